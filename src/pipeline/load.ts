import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import {
  Composer,
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  Parser,
  type CST,
  type Document,
  type DocumentOptions,
  type ParseOptions,
  type SchemaOptions,
  type Node as YamlNode,
  type Pair,
  type YAMLError,
  type YAMLMap,
} from 'yaml';
import { createDict } from '../core/json.js';
import type { Diagnostic, DiagnosticCode, DocPath } from '../errors.js';
import type { Position, SourceDocument } from './source.js';

/** Larger files are refused: a pipeline is configuration, not data. */
export const MAX_PIPELINE_BYTES = 1024 * 1024;
/** Deeper nesting is refused before the document is composed, so nothing can overflow the stack. */
export const MAX_NESTING_DEPTH = 200;
/**
 * Alias uses (counting those reached through other aliases) allowed while building the value:
 * enough for sharing a few blocks, far too few for an exponential "billion laughs" expansion.
 */
export const MAX_ALIAS_COUNT = 100;

const CORE_TAGS = new Set(
  ['str', 'int', 'float', 'bool', 'null', 'map', 'seq'].map((name) => `tag:yaml.org,2002:${name}`),
);

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

/** Thrown inside the value builder to stop at the first resource-limit problem. */
class BuildLimitError extends Error {
  constructor(
    readonly code: DiagnosticCode,
    message: string,
    readonly offset: number,
  ) {
    super(message);
  }
}

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

  const report = (error: YAMLError, severity: Diagnostic['severity']) => {
    const code = yamlCode(error);
    at(error.pos[0], code, yamlMessage(error), code === 'YAML_TAG' ? 'error' : severity);
  };
  for (const error of doc.errors) report(error, 'error');
  for (const warning of doc.warnings) report(warning, 'warning');
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
  let text: string;
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
    text = await readFile(path, 'utf8');
  } catch (error) {
    const reason =
      (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : String((error as Error).message);
    return failed('FILE_UNREADABLE', `cannot read ${path}: ${reason}`);
  }
  return parsePipelineText(path, text);
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

function tagMessage(tag: string): string {
  return `unsupported tag ${tag.replace(/^tag:yaml\.org,2002:/, '!!')}: only plain YAML values (strings, numbers, booleans, null, lists, mappings) are allowed`;
}

function isEmptyScalar(node: unknown): boolean {
  return isScalar(node) && node.value === null && (node.source ?? '') === '' && node.tag === undefined;
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

type ParsedNode = YamlNode;

/** For every alias, the anchored node it refers to: the last one with that anchor before it. */
function resolveAliases(doc: Document.Parsed): Map<YamlNode, YamlNode> {
  const anchors = new Map<string, YamlNode>();
  const targets = new Map<YamlNode, YamlNode>();
  // Depth is bounded by findTooDeep, so recursion is safe here.
  const visit = (node: unknown): void => {
    if (isAlias(node)) {
      const target = anchors.get(node.source);
      if (target) targets.set(node, target);
      return;
    }
    if (isScalar(node) || isMap(node) || isSeq(node)) {
      if (node.anchor) anchors.set(node.anchor, node);
    }
    if (isMap(node)) {
      for (const pair of node.items) {
        visit(pair.key);
        visit(pair.value);
      }
    } else if (isSeq(node)) {
      for (const item of node.items) visit(item);
    }
  };
  visit(doc.contents);
  return targets;
}

function offsetOf(node: unknown, fallback = 0): number {
  const range = (node as { range?: readonly number[] | null } | null)?.range;
  return range?.[0] ?? fallback;
}

/**
 * Builds the plain value from the AST ourselves, so that maps are prototype-free (a `__proto__`
 * key is a plain key) and aliases are expanded under our own budget.
 */
function buildValue(
  doc: Document.Parsed,
  report: (offset: number, code: DiagnosticCode, message: string, path?: DocPath) => void,
): unknown {
  // Most pipelines have no alias at all: index anchors only when the first alias shows up.
  let targets: Map<YamlNode, YamlNode> | undefined;
  let aliasUses = 0;
  const expanding = new Set<YamlNode>();

  const checkTag = (node: YamlNode) => {
    const tag = (node as { tag?: string }).tag;
    if (tag !== undefined && !CORE_TAGS.has(tag)) report(offsetOf(node), 'YAML_TAG', tagMessage(tag));
  };

  // `path` is where the node sits in the value (through aliases: where it is used), so that a
  // problem found in it can name the key it is under.
  const build = (node: unknown, depth: number, path: DocPath = []): unknown => {
    if (depth > MAX_NESTING_DEPTH) {
      throw new BuildLimitError(
        'YAML_TOO_DEEP',
        `the document nests more than ${MAX_NESTING_DEPTH} levels deep once aliases are expanded`,
        offsetOf(node),
      );
    }
    if (node === null || node === undefined) return null;
    if (isAlias(node)) {
      aliasUses += 1;
      if (aliasUses > MAX_ALIAS_COUNT) {
        throw new BuildLimitError(
          'YAML_ALIAS_LIMIT',
          `too many alias expansions (more than ${MAX_ALIAS_COUNT}): aliases may be used to share a few values, not to multiply them`,
          offsetOf(node),
        );
      }
      targets ??= resolveAliases(doc);
      const target = targets.get(node);
      if (!target)
        throw new BuildLimitError(
          'YAML_SYNTAX',
          `alias *${node.source} refers to no anchor defined before it`,
          offsetOf(node),
        );
      if (expanding.has(target))
        throw new BuildLimitError(
          'YAML_ALIAS_LIMIT',
          `alias *${node.source} refers to a value that contains it`,
          offsetOf(node),
        );
      expanding.add(target);
      try {
        return build(target, depth, path);
      } finally {
        expanding.delete(target);
      }
    }
    if (isScalar(node)) {
      checkTag(node);
      return node.value;
    }
    if (isMap(node)) {
      checkTag(node);
      const result = createDict<unknown>();
      for (const pair of node.items) {
        const key = keyText(pair, depth, build);
        if (Object.prototype.hasOwnProperty.call(result, key)) {
          report(
            offsetOf(pair.key),
            'YAML_DUPLICATE_KEY',
            `the key "${key}" appears twice in the same mapping`,
            [...path, key],
          );
          continue;
        }
        result[key] = build(pair.value, depth + 1, [...path, key]);
      }
      return result;
    }
    if (isSeq(node)) {
      checkTag(node);
      return node.items.map((item, index) => build(item, depth + 1, [...path, index]));
    }
    throw new BuildLimitError('YAML_SYNTAX', 'unexpected YAML node', offsetOf(node));
  };

  return build(doc.contents, 0);
}

/** The string form of a map key; keys that are collections are refused. */
function keyText(pair: Pair, depth: number, build: (node: unknown, depth: number) => unknown): string {
  const key = pair.key;
  if (key === null || key === undefined) return '';
  if (isScalar(key)) {
    if (typeof key.value === 'string') return key.value;
    // `1.0:` stays "1.0", as written, rather than "1".
    return key.source ?? String(key.value);
  }
  if (isAlias(key)) {
    const value = build(key, depth);
    if (value === null || typeof value !== 'object') return String(value);
  }
  throw new BuildLimitError(
    'YAML_SYNTAX',
    'a mapping key must be a plain value (a name), not a list or a mapping',
    offsetOf(key),
  );
}

function scalarKeyText(key: unknown): string | undefined {
  if (isScalar(key)) return typeof key.value === 'string' ? key.value : (key.source ?? String(key.value));
  if (key === null || key === undefined) return '';
  return undefined;
}

interface Located {
  /** The deepest node reached on the path (or the document's root). */
  node: ParsedNode | null;
  /** The key of the pair that holds `node`, when it is a map value. */
  key: ParsedNode | null;
  /** How many path segments were found. */
  found: number;
}

function createSourceDocument(
  file: string,
  text: string,
  doc: Document.Parsed | null,
  lineCounter: LineCounter,
  value: unknown,
): SourceDocument {
  const hash = createHash('sha256').update(text).digest('hex');
  // Lookups by key in big maps (10,000 tasks) would be quadratic without an index.
  const indexes = new WeakMap<YAMLMap, Map<string, Pair>>();
  let aliasTargets: Map<YamlNode, YamlNode> | undefined;
  const deref = (node: unknown): unknown => {
    if (!isAlias(node) || !doc) return node;
    aliasTargets ??= resolveAliases(doc);
    return aliasTargets.get(node) ?? node;
  };
  const pairIn = (map: YAMLMap, key: string): Pair | undefined => {
    let index = indexes.get(map);
    if (!index) {
      index = new Map();
      for (const pair of map.items) {
        const text = scalarKeyText(pair.key);
        if (text !== undefined && !index.has(text) && isPair(pair)) index.set(text, pair);
      }
      indexes.set(map, index);
    }
    return index.get(key);
  };

  const locate = (path: DocPath): Located => {
    let node = deref(doc?.contents ?? null) as ParsedNode | null;
    let key: ParsedNode | null = null;
    let found = 0;
    for (const segment of path) {
      if (isMap(node)) {
        const pair = pairIn(node, String(segment));
        if (!pair) break;
        key = (pair.key as ParsedNode | null) ?? null;
        node = deref(pair.value) as ParsedNode | null;
      } else if (isSeq(node)) {
        const index = typeof segment === 'number' ? segment : Number(segment);
        const item = Number.isInteger(index) ? node.items[index] : undefined;
        if (item === undefined) break;
        key = null;
        node = deref(item) as ParsedNode | null;
      } else {
        break;
      }
      found += 1;
    }
    return { node, key, found };
  };

  const toPosition = (offset: number): Position => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };

  const positionOf = (path: DocPath, options: { key?: boolean } = {}): Position => {
    if (!doc) return { line: 1, column: 1 };
    const { node, key, found } = locate(path);
    const complete = found === path.length;
    // A pair with no value (`retries:`) has no node of its own: its key stands for it.
    const valueless = node === null || isEmptyScalar(node);
    const target = (complete && options.key) || valueless ? (key ?? node) : node;
    const range = (target as { range?: readonly number[] | null } | null)?.range;
    if (!range) return { line: 1, column: 1 };
    return toPosition(range[0] ?? 0);
  };

  return {
    file,
    text,
    hash,
    value,
    doc,
    lineCounter,
    positionOf,
    diagnosticAt(path, fields, options) {
      const { line, column } = positionOf(path, options);
      const diagnostic: Diagnostic = {
        code: fields.code,
        severity: fields.severity ?? 'error',
        message: fields.message,
        file,
        line,
        column,
        path: [...path],
      };
      if (fields.hint !== undefined) diagnostic.hint = fields.hint;
      return diagnostic;
    },
  };
}
