import { isAlias, isMap, isScalar, isSeq, type Document, type Node as YamlNode, type Pair } from 'yaml';
import { createDict } from '../core/json.js';
import type { DiagnosticCode, DocPath } from '../errors.js';
import { MAX_ALIAS_COUNT, MAX_NESTING_DEPTH } from './load-limits.js';

const CORE_TAGS = new Set(
  ['str', 'int', 'float', 'bool', 'null', 'map', 'seq'].map((name) => `tag:yaml.org,2002:${name}`),
);

/** Thrown inside the value builder to stop at the first resource-limit problem. */
export class BuildLimitError extends Error {
  constructor(
    readonly code: DiagnosticCode,
    message: string,
    readonly offset: number,
  ) {
    super(message);
  }
}

export function tagMessage(tag: string): string {
  return `unsupported tag ${tag.replace(/^tag:yaml\.org,2002:/, '!!')}: only plain YAML values (strings, numbers, booleans, null, lists, mappings) are allowed`;
}

export function isEmptyScalar(node: unknown): boolean {
  return isScalar(node) && node.value === null && (node.source ?? '') === '' && node.tag === undefined;
}

/** For every alias, the anchored node it refers to: the last one with that anchor before it. */
export function resolveAliases(doc: Document.Parsed): Map<YamlNode, YamlNode> {
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
export function buildValue(
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
