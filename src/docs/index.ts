import { createBuiltinHandlers } from '../handlers/builtins.js';
import { organismHandlers } from '../organism/index.js';
import { loadPipelineSchema } from '../pipeline/schema.js';
import { BUILTIN_HANDLERS_DOC_PATH, generateBuiltinHandlersDoc } from './builtin-handlers-doc.js';
import { CLI_DOC_PATH, generateCliDoc } from './cli-doc.js';
import { LANGUAGE_DOC_PATH, generateLanguageDoc } from './language-doc.js';

/** Every generated document, by its path in the repository: what scripts/gen-docs.mjs writes and the drift test compares. */
export function generateDocs(): Record<string, string> {
  return {
    [LANGUAGE_DOC_PATH]: generateLanguageDoc(loadPipelineSchema()),
    [CLI_DOC_PATH]: generateCliDoc(),
    [BUILTIN_HANDLERS_DOC_PATH]: generateBuiltinHandlersDoc([
      {
        title: 'General',
        intro: 'For any pipeline: placeholders, waits, commands, HTTP calls and notifications.',
        handlers: createBuiltinHandlers(),
      },
      {
        title: 'Causal Organism',
        intro:
          'The handlers of the reference pipelines (`pipelines/incremental-update.yaml`, `pipelines/full-analysis.yaml`); see docs/organism-metrics.md.',
        handlers: organismHandlers,
      },
    ]),
  };
}
