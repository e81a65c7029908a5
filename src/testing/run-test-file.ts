import { dirname, resolve } from 'node:path';
import {
  handlersUsedBy,
  runPlanWithMocks,
  unknownMockKeys,
  type PipelineRunResult,
} from '../authoring/run-plan.js';
import type { Plan } from '../compile/plan.js';
import type { Position, SourceDocument } from '../pipeline/source.js';
import type { Diagnostic } from '../errors.js';
import { toWeftError } from '../errors.js';
import type { HandlerRegistry } from '../handlers/registry.js';
import { resolveParams } from '../pipeline/params.js';
import { suggest } from '../pipeline/suggest.js';
import { displayPath } from '../project/discover.js';
import { loadPipeline } from '../project/load-pipeline.js';
import { loadTestFile } from './load-test-file.js';
import { matchSubset, show } from './match.js';
import type { TestCaseSpec } from './test-file-schema.js';

export interface CaseResult {
  name: string;
  passed: boolean;
  /** Each difference between what was expected and what happened, one line each. */
  failures: string[];
  /** Where the case starts in the test file. */
  position: Position;
  durationMs: number;
}

export interface TestFileResult {
  file: string;
  /** The pipeline file, as the user would type it; null when the test file did not say. */
  pipelineFile: string | null;
  /** Problems with the test file itself (or its pipeline): no case ran when any is an error. */
  diagnostics: Diagnostic[];
  cases: CaseResult[];
  passed: boolean;
}

/**
 * Runs every case of one test file. Each case is one run of the pipeline in a fresh in-memory
 * store; every handler that the case does not mock is replaced by a stub returning null, so a test
 * never runs a shell command, sends a request or writes to a database.
 */
export async function runTestFile(
  file: string,
  options: { registry: HandlerRegistry; cwd: string },
): Promise<TestFileResult> {
  const loaded = await loadTestFile(file, { cwd: options.cwd });
  const result = (
    pipelineFile: string | null,
    diagnostics: Diagnostic[],
    cases: CaseResult[] = [],
  ): TestFileResult => ({
    file,
    pipelineFile,
    diagnostics,
    cases,
    passed: !diagnostics.some((d) => d.severity === 'error') && cases.every((c) => c.passed),
  });
  if (!loaded.spec || !loaded.source) return result(null, loaded.diagnostics);
  const { spec, source } = loaded;
  const pipelineFile = displayPath(resolve(dirname(resolve(options.cwd, file)), spec.pipeline), options.cwd);
  const pipeline = await loadPipeline(resolve(options.cwd, pipelineFile), { registry: options.registry });
  if (!pipeline.plan) {
    const problems = pipeline.diagnostics.filter((d) => d.severity === 'error');
    const first = problems[0];
    const why =
      pipeline.diagnostics[0]?.code === 'FILE_UNREADABLE'
        ? `cannot read pipeline ${pipelineFile}`
        : `pipeline ${pipelineFile} is invalid (${problems.length} error${problems.length === 1 ? '' : 's'}, first: ${first ? `${first.line}:${first.column} ${first.message}` : '?'}); run weft validate`;
    return result(pipelineFile, [
      source.diagnosticAt(['pipeline'], { code: 'FILE_UNREADABLE', message: why }),
    ]);
  }
  const plan = pipeline.plan;
  const diagnostics = checkCases(spec.cases, plan, source);
  if (diagnostics.some((d) => d.severity === 'error')) return result(pipelineFile, diagnostics);
  const cases: CaseResult[] = [];
  for (const [index, testCase] of spec.cases.entries()) {
    cases.push(await runCase(testCase, plan, options.registry, source.positionOf(['cases', index])));
  }
  return result(pipelineFile, diagnostics, cases);
}

/** What can be known before running: task names in expectations, mock targets and params. */
function checkCases(cases: TestCaseSpec[], plan: Plan, source: SourceDocument): Diagnostic[] {
  const diagnostics: Diagnostic[] = [];
  const tasks = Object.keys(plan.tasks);
  cases.forEach((testCase, index) => {
    for (const task of Object.keys(testCase.expect.tasks ?? {})) {
      if (Object.hasOwn(plan.tasks, task)) continue;
      const guess = suggest(task, tasks);
      diagnostics.push(
        source.diagnosticAt(
          ['cases', index, 'expect', 'tasks', task],
          {
            code: 'SCHEMA_INVALID',
            message: `pipeline ${plan.name} has no task "${task}"`,
            hint: guess ? `did you mean "${guess}"?` : `tasks: ${tasks.join(', ')}`,
          },
          { key: true },
        ),
      );
    }
    for (const key of unknownMockKeys(plan, testCase.mocks ?? {})) {
      const names = [...tasks, ...handlersUsedBy(plan)];
      const guess = suggest(key, names);
      diagnostics.push(
        source.diagnosticAt(
          ['cases', index, 'mocks', key],
          {
            code: 'SCHEMA_INVALID',
            message: `mock "${key}" matches no task or handler of pipeline ${plan.name}`,
            hint: guess ? `did you mean "${guess}"?` : `tasks and handlers: ${names.join(', ')}`,
          },
          { key: true },
        ),
      );
    }
    const { errors } = resolveParams(plan.params, testCase.params ?? {}, 'json');
    for (const error of errors) {
      diagnostics.push(
        source.diagnosticAt(
          testCase.params ? ['cases', index, 'params'] : ['cases', index],
          { code: 'SCHEMA_INVALID', message: error },
          { key: testCase.params !== undefined },
        ),
      );
    }
  });
  return diagnostics.sort((a, b) => a.line - b.line || a.column - b.column);
}

async function runCase(
  testCase: TestCaseSpec,
  plan: Plan,
  registry: HandlerRegistry,
  position: Position,
): Promise<CaseResult> {
  const started = performance.now();
  const failures: string[] = [];
  let outcome: PipelineRunResult | undefined;
  try {
    outcome = await runPlanWithMocks(plan, {
      registry,
      params: testCase.params ?? {},
      mocks: testCase.mocks ?? {},
      stubUnmocked: true,
    });
  } catch (error) {
    failures.push(`the run could not start: ${toWeftError(error).message}`);
  }
  if (outcome) failures.push(...compare(testCase, outcome));
  return {
    name: testCase.name,
    passed: failures.length === 0,
    failures,
    position,
    durationMs: Math.round(performance.now() - started),
  };
}

function compare(testCase: TestCaseSpec, outcome: PipelineRunResult): string[] {
  const failures: string[] = [];
  const expected = testCase.expect;
  if (expected.run !== undefined && expected.run !== outcome.run.state) {
    const why = outcome.run.error ? ` (${outcome.run.error.message.split('\n')[0]})` : '';
    failures.push(`run: expected ${show(expected.run)}, got ${show(outcome.run.state)}${why}`);
  }
  for (const [task, want] of Object.entries(expected.tasks ?? {})) {
    const got = outcome.tasks[task];
    if (!got) continue; // checked before running
    const at = `tasks.${task}`;
    if (want.state !== undefined && want.state !== got.state) {
      const why = got.error?.message ?? got.reason;
      failures.push(
        `${at}.state: expected ${show(want.state)}, got ${show(got.state)}${why ? ` (${why.split('\n')[0]})` : ''}`,
      );
    }
    if (want.output !== undefined) failures.push(...matchSubset(want.output, got.output, `${at}.output`));
    if (want.error !== undefined && !(got.error?.message ?? '').includes(want.error)) {
      failures.push(
        `${at}.error: expected a message containing ${show(want.error)}, got ${show(got.error?.message ?? null)}`,
      );
    }
    if (want.attempts !== undefined && want.attempts !== got.attempts) {
      failures.push(`${at}.attempts: expected ${want.attempts}, got ${got.attempts}`);
    }
  }
  return failures;
}
