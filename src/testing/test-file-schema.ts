import type { JsonSchema } from '../handlers/types.js';
import type { JsonValue } from '../core/json.js';
import type { RunState, TaskState } from '../core/states.js';
import { RUN_STATES, TASK_STATES } from '../core/states.js';

/** A pipeline test file (`*.test.yaml`) as written, after its schema accepted it. */
export interface TestFileSpec {
  /** The pipeline under test, relative to the test file. */
  pipeline: string;
  cases: TestCaseSpec[];
}

export interface TestCaseSpec {
  name: string;
  params?: { [name: string]: JsonValue };
  mocks?: { [taskOrHandler: string]: MockCaseSpec };
  expect: ExpectSpec;
}

export interface MockCaseSpec {
  output?: JsonValue;
  fail?: string;
  times?: number;
  retryable?: boolean;
}

export interface ExpectSpec {
  run?: RunState;
  tasks?: { [task: string]: TaskExpectSpec };
}

export interface TaskExpectSpec {
  state?: TaskState;
  /** Matched as a subset: objects may hold more keys than listed. */
  output?: JsonValue;
  /** A part of the error message. */
  error?: string;
  attempts?: number;
}

/** The test-file language, small on purpose; every property has a description for editors. */
export const TEST_FILE_SCHEMA: JsonSchema = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  title: 'weft pipeline test file',
  type: 'object',
  additionalProperties: false,
  required: ['pipeline', 'cases'],
  properties: {
    pipeline: {
      type: 'string',
      minLength: 1,
      description: 'The pipeline file under test, relative to this file.',
      examples: ['hello.yaml'],
    },
    cases: {
      type: 'array',
      minItems: 1,
      description: 'Each case runs the pipeline once, in memory, with mocked handlers.',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'expect'],
        properties: {
          name: { type: 'string', minLength: 1, description: 'What the case shows, in words.' },
          params: {
            type: 'object',
            description: "The run's params, as typed values; the pipeline's defaults fill the rest.",
          },
          mocks: {
            type: 'object',
            description:
              'Stand-ins by task name or handler name. Handlers not mocked are replaced by stubs returning null.',
            additionalProperties: {
              type: 'object',
              additionalProperties: false,
              properties: {
                output: { description: 'What the task returns (its output).' },
                fail: { type: 'string', description: 'Throw an error with this message.' },
                times: {
                  type: 'integer',
                  minimum: 1,
                  description: 'Fail only the first N attempts, then return `output` (retries show here).',
                },
                retryable: {
                  type: 'boolean',
                  description: 'false: the failure is not retried (NonRetryableError).',
                },
              },
            },
          },
          expect: {
            type: 'object',
            additionalProperties: false,
            description: 'How the run and its tasks must end.',
            properties: {
              run: { enum: [...RUN_STATES], description: "The run's final state." },
              tasks: {
                type: 'object',
                description:
                  'Per task: its final state, a subset of its output, a part of its error, its attempts.',
                additionalProperties: {
                  type: 'object',
                  additionalProperties: false,
                  properties: {
                    state: { enum: [...TASK_STATES], description: "The task's final state." },
                    output: {
                      description: 'Expected output; objects match when they hold at least these keys.',
                    },
                    error: { type: 'string', description: 'A part of the error message.' },
                    attempts: { type: 'integer', minimum: 0, description: 'Attempts made.' },
                  },
                },
              },
            },
          },
        },
      },
    },
  },
};
