import { parsePipelineText } from '../../src/pipeline/load.js';
import type { SourceDocument } from '../../src/pipeline/source.js';
import type { PipelineSpec } from '../../src/pipeline/spec.js';

/**
 * A SourceDocument from YAML text, through the real loader, for compiler tests. The schema stage
 * is skipped on purpose: tests here write schema-valid YAML and check the compiler alone.
 */
export function sourceFromYaml(text: string, file = 'pipeline.yaml'): SourceDocument {
  const { source, diagnostics } = parsePipelineText(file, text);
  if (diagnostics.length > 0) {
    throw new Error(
      `test YAML does not load: ${diagnostics.map((d) => `${d.code} ${d.line}:${d.column} ${d.message}`).join('; ')}`,
    );
  }
  return source;
}

/** The source and its value as a PipelineSpec (tests write schema-valid YAML). */
export function specFromYaml(text: string, file?: string): { source: SourceDocument; spec: PipelineSpec } {
  const source = sourceFromYaml(text, file);
  return { source, spec: source.value as PipelineSpec };
}
