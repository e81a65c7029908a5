import { readFile, stat } from 'node:fs/promises';
import {
  Composer,
  LineCounter,
  Parser,
  type CST,
  type Document,
  type DocumentOptions,
  type ParseOptions,
  type SchemaOptions,
  type YAMLError,
} from 'yaml';
import type { Diagnostic, DiagnosticCode, DocPath } from '../errors.js';
import { BuildLimitError, buildValue, isEmptyScalar, tagMessage } from './build-value.js';
import { decodeUtf8, encodingDiagnostic } from './decode-utf8.js';
import { MAX_NESTING_DEPTH, MAX_PIPELINE_BYTES } from './load-limits.js';
import { createSourceDocument } from './source-document.js';
import type { SourceDocument } from './source.js';

// The limits live in their own module so that the value builder can share them without a cycle.
export { MAX_ALIAS_COUNT, MAX_NESTING_DEPTH, MAX_PIPELINE_BYTES } from './load-limits.js';

const YAML_OPTIONS: DocumentOptions & ParseOptions & SchemaOptions = {
  // Duplicate keys ARE errors, but yaml's own check compares every new key with all earlier
  // ones (quadratic: half a second for 10,000 tasks). buildValue finds them in linear time, and
  // by their string form, so `1:` and `"1":` collide as they do in the value.
  uniqueKeys: false,
  prettyErrors: false,
  strict: true,
  schema: 'core',
  customTags: [],
  // Without this, yaml would turn !!binary, !!set, !!timestamp ... into non-JSON values.
  resolveKnownTags: false,
  keepSourceTokens: false,
};

/**
 * Parses pipeline text into a SourceDocument. Never throws for bad input: every problem is a
 * diagnostic. `value` is undefined whenever an error was found, so later stages do not pile
 * their own complaints on a half-parsed document.
 */
export function parsePipelineText(
  file: string,
  text: string,
): { source: SourceDocument; diagnostics: Diagnostic[] } {
  const lineCounter = new LineCounter();
  const diagnostics: Diagnostic[] = [];
  const reported = new Set<string>();
  const at = (
    offset: number,
    code: DiagnosticCode,
    message: string,
    severity: Diagnostic['severity'] = 'error',
    path: DocPath = [],
  ) => {
    // An aliased node is built once per use: report its problems once.
    const once = `${code}@${offset}`;
    if (reported.has(once)) return;
    reported.add(once);
    const { line, col } = lineCounter.linePos(offset);
    diagnostics.push({ code, severity, message, file, line, column: col, path: [...path] });
  };
  const done = (doc: Document.Parsed | null, value: unknown) => ({
    source: createSourceDocument(file, text, doc, lineCounter, value),
    diagnostics,
  });

  if (Buffer.byteLength(text, 'utf8') > MAX_PIPELINE_BYTES) {
    diagnostics.push(
      fileDiagnostic(file, 'FILE_TOO_LARGE', `the file is larger than ${MAX_PIPELINE_BYTES} bytes`),
    );
    return done(null, undefined);
  }

  // The CST parser keeps its own stack (no recursion), so a hostile nesting depth is measured
  // here, before the recursive composer ever sees it.
  const tokens = [...new Parser(lineCounter.addNewLine).parse(text)];
  const deep = findTooDeep(tokens, MAX_NESTING_DEPTH);
  if (deep !== null) {
    at(deep, 'YAML_TOO_DEEP', `the document nests more than ${MAX_NESTING_DEPTH} levels deep`);
    return done(null, undefined);
  }

  const composer = new Composer(YAML_OPTIONS);
  let doc: Document.Parsed | null = null;
  for (const next of composer.compose(tokens, true, text.length)) {
    if (doc === null) {
      doc = next;
    } else {
      at(
        next.range[0],
        'YAML_SYNTAX',
        'a pipeline file holds one YAML document, but a second one starts here (`---`)',
      );
      break;
    }
  }
  if (doc === null) return done(null, undefined);

  const report = (error: YAMLError) => at(error.pos[0], yamlCode(error), yamlMessage(error));
  for (const error of doc.errors) report(error);
  // IMPORTANT: yaml's warnings are errors here. Each one (an unknown `%FOO` directive, an
  // unsupported version, a misplaced flow end, an unresolved tag) means the file does not say
  // exactly what it seems to, and a pipeline that "validates with warnings" would still run.
  for (const warning of doc.warnings) report(warning);
  for (const directive of yamlVersionDirectives(tokens)) {
    at(
      directive.offset,
      'YAML_SYNTAX',
      `weft reads YAML 1.2 only, but this file declares %YAML ${directive.version}: 1.1 meanings (yes/no booleans, sexagesimal numbers, …) would not apply`,
    );
  }
  if (diagnostics.some((d) => d.severity === 'error')) return done(doc, undefined);

  if (doc.contents === null || isEmptyScalarDocument(doc)) {
    at(0, 'YAML_EMPTY', 'the file is empty: a pipeline needs at least `name` and `tasks`');
    return done(doc, undefined);
  }

  try {
    const value = buildValue(doc, (offset, code, message, path) => at(offset, code, message, 'error', path));
    if (diagnostics.some((d) => d.severity === 'error')) return done(doc, undefined);
    return done(doc, value);
  } catch (error) {
    if (error instanceof BuildLimitError) {
      at(error.offset, error.code, error.message);
      return done(doc, undefined);
    }
    throw error;
  }
}

/**
 * Reads and parses a pipeline file. A missing, unreadable or oversized file is a diagnostic at
 * 1:1, never an exception.
 */
export async function readPipelineFile(
  path: string,
): Promise<{ source: SourceDocument; diagnostics: Diagnostic[] }> {
  const failed = (code: DiagnosticCode, message: string) => ({
    source: createSourceDocument(path, '', null, new LineCounter(), undefined),
    diagnostics: [fileDiagnostic(path, code, message)],
  });
  let bytes: Buffer;
  try {
    // stat first so a huge file is refused without reading it into memory.
    const info = await stat(path);
    if (!info.isFile()) return failed('FILE_UNREADABLE', `cannot read ${path}: not a file`);
    if (info.size > MAX_PIPELINE_BYTES) {
      return failed(
        'FILE_TOO_LARGE',
        `${path} is ${info.size} bytes, more than the ${MAX_PIPELINE_BYTES} allowed`,
      );
    }
    bytes = await readFile(path);
  } catch (error) {
    const reason =
      (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : String((error as Error).message);
    return failed('FILE_UNREADABLE', `cannot read ${path}: ${reason}`);
  }
  const decoded = decodeUtf8(bytes);
  if (!decoded.ok) {
    return {
      source: createSourceDocument(path, '', null, new LineCounter(), undefined),
      diagnostics: [encodingDiagnostic(path, decoded)],
    };
  }
  return parsePipelineText(path, decoded.text);
}

function fileDiagnostic(file: string, code: DiagnosticCode, message: string): Diagnostic {
  return { code, severity: 'error', message, file, line: 1, column: 1, path: [] };
}

function yamlCode(error: YAMLError): DiagnosticCode {
  if (error.code === 'DUPLICATE_KEY') return 'YAML_DUPLICATE_KEY';
  if (error.code === 'TAG_RESOLVE_FAILED') return 'YAML_TAG';
  // Everything else is a syntax problem; alias exhaustion is caught by our own builder.
  return 'YAML_SYNTAX';
}

function yamlMessage(error: YAMLError): string {
  if (error.code === 'DUPLICATE_KEY') return 'this key appears twice in the same mapping';
  if (error.code === 'TAG_RESOLVE_FAILED')
    return tagMessage(error.message.replace(/^Unresolved tag:\s*/, ''));
  const text = error.message.split('\n')[0] ?? error.message;
  return text.charAt(0).toLowerCase() + text.slice(1);
}

/**
 * `%YAML` directives that name a version other than 1.2. yaml accepts 1.1 silently (and warns
 * about others, which are reported as errors already), but weft always reads the 1.2 core schema.
 */
function yamlVersionDirectives(tokens: readonly CST.Token[]): { offset: number; version: string }[] {
  const found: { offset: number; version: string }[] = [];
  for (const token of tokens) {
    if (token.type !== 'directive') continue;
    const match = /^%YAML[ \t]+(\S+)/.exec(token.source);
    // Versions yaml does not know are its own BAD_DIRECTIVE warning: don't report them twice.
    if (match?.[1] === '1.1')
      found.push({
        offset: token.offset + match.index + match[0].length - match[1].length,
        version: match[1],
      });
  }
  return found;
}

function isEmptyScalarDocument(doc: Document.Parsed): boolean {
  // `---` alone, or only comments, composes to a null scalar with no source text.
  return isEmptyScalar(doc.contents);
}

/** Offset of the first collection nested deeper than `max`, or null. Iterative on purpose. */
function findTooDeep(tokens: readonly CST.Token[], max: number): number | null {
  const stack: { token: CST.Token; depth: number }[] = tokens.map((token) => ({ token, depth: 0 }));
  while (stack.length > 0) {
    const { token, depth } = stack.pop()!;
    if (token.type === 'document') {
      if (token.value) stack.push({ token: token.value, depth });
    } else if (token.type === 'block-map' || token.type === 'block-seq' || token.type === 'flow-collection') {
      const inner = depth + 1;
      if (inner > max) return token.offset;
      for (const item of token.items) {
        if ('key' in item && item.key) stack.push({ token: item.key, depth: inner });
        if (item.value) stack.push({ token: item.value, depth: inner });
      }
    }
  }
  return null;
}
