import { createHash } from 'node:crypto';
import {
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  type Document,
  type LineCounter,
  type Node as YamlNode,
  type Pair,
  type YAMLMap,
} from 'yaml';
import type { Diagnostic, DocPath } from '../errors.js';
import { isEmptyScalar, resolveAliases } from './build-value.js';
import type { Position, SourceDocument } from './source.js';

type ParsedNode = YamlNode;

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

/**
 * Builds the SourceDocument whose type is in source.ts: the text, its value and the lookups from a
 * path in the value back to a line and column.
 */
export function createSourceDocument(
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
