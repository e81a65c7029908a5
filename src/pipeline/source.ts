import type { Document, LineCounter } from 'yaml';
import type { Diagnostic, DocPath } from '../errors.js';

/** Where a value sits in the YAML text: 1-based line and column. */
export interface Position {
  line: number;
  column: number;
}

/**
 * A parsed pipeline file that remembers where everything came from, so every later stage
 * (schema, graph, expressions, even run-time errors) can point back at the YAML line.
 */
export interface SourceDocument {
  /** The file as the user named it. */
  file: string;
  text: string;
  /** sha256 of `text`, hex. */
  hash: string;
  /** The parsed value, with prototype-free objects; undefined when the YAML did not parse. */
  value: unknown;
  doc: Document.Parsed | null;
  lineCounter: LineCounter;
  /**
   * Position of the node at `path`. With `key: true`, of the map key that holds it (for an
   * unknown key, point at the key). Falls back to the nearest ancestor that exists (for a
   * missing key, its parent), and to 1:1 when nothing does.
   */
  positionOf(path: DocPath, options?: { key?: boolean }): Position;
  /** Builds a diagnostic positioned at `path`. */
  diagnosticAt(
    path: DocPath,
    fields: Pick<Diagnostic, 'code' | 'message'> & Partial<Pick<Diagnostic, 'severity' | 'hint'>>,
    options?: { key?: boolean },
  ): Diagnostic;
}
