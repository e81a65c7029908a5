import type { JsonPrimitive } from '../core/json.js';

/**
 * The expression language inside `${{ … }}`: paths (`params.n`, `env.HOME`, `tasks.a.output.rows[0]`,
 * `run.id`), literals, comparisons, `&& || !` and parentheses. Nothing else: no calls, no arithmetic,
 * so an expression can only read the scope it is given. Parsing never throws; it returns errors
 * with offsets into the text that was parsed.
 */

export const EXPRESSION_ROOTS = ['params', 'env', 'tasks', 'run'] as const;
export type ExpressionRoot = (typeof EXPRESSION_ROOTS)[number];
export const RUN_FIELDS = ['id', 'scheduled_for', 'attempt'] as const;
/** `tasks.NAME.output` (with a path into it) or `tasks.NAME.state`. */
export const TASK_FIELDS = ['output', 'state'] as const;

export type PathSegment = string | number;
export type CompareOp = '==' | '!=' | '<' | '<=' | '>' | '>=';

/** Offsets are absolute: into the whole string the expression was found in. */
export type Expr =
  | { kind: 'literal'; value: JsonPrimitive; offset: number }
  | { kind: 'path'; root: string; segments: PathSegment[]; offset: number; end: number }
  | { kind: 'not'; operand: Expr; offset: number }
  | { kind: 'compare'; op: CompareOp; left: Expr; right: Expr; offset: number }
  | { kind: 'logical'; op: '&&' | '||'; left: Expr; right: Expr; offset: number };

export interface ExpressionError {
  message: string;
  /** Offset into the parsed text. */
  offset: number;
}

type Token =
  | { kind: 'ident'; value: string; offset: number; end: number }
  | { kind: 'number'; value: number; offset: number; end: number }
  | { kind: 'string'; value: string; offset: number; end: number }
  | { kind: 'punct'; value: string; offset: number; end: number }
  | { kind: 'eof'; value: ''; offset: number; end: number };

class ParseError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
  }
}

/** Deep enough for any sensible condition; stops `((((…` from overflowing the stack. */
const MAX_DEPTH = 64;
const IDENT_START = /[A-Za-z_]/;
const IDENT_PART = /[A-Za-z0-9_-]/;
const NUMBER = /-?\d+(\.\d+)?([eE][+-]?\d+)?/y;
const PUNCT = ['==', '!=', '<=', '>=', '&&', '||', '<', '>', '!', '(', ')', '.', '[', ']'] as const;
const ESCAPES: Record<string, string> = {
  n: '\n',
  t: '\t',
  r: '\r',
  '\\': '\\',
  "'": "'",
  '"': '"',
  '0': '\0',
};

/**
 * Reads a quoted string starting at `start` (the quote). Returns the value and the index after the
 * closing quote, or an error. Shared with the template scanner so that `}}` inside a string
 * literal does not end an expression.
 */
export function readQuoted(
  text: string,
  start: number,
): { value: string; end: number } | { error: string; offset: number } {
  const quote = text[start];
  let value = '';
  let i = start + 1;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === quote) return { value, end: i + 1 };
    if (ch === '\\') {
      const next = text[i + 1];
      if (next === undefined) break;
      const escaped = Object.hasOwn(ESCAPES, next) ? ESCAPES[next] : undefined;
      if (escaped === undefined) return { error: `unknown escape "\\${next}" in a string`, offset: i };
      value += escaped;
      i += 2;
      continue;
    }
    value += ch;
    i += 1;
  }
  return { error: 'unterminated string', offset: start };
}

function tokenize(text: string, base: number): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (/\s/.test(ch)) {
      i += 1;
      continue;
    }
    const offset = base + i;
    if (ch === '"' || ch === "'") {
      const read = readQuoted(text, i);
      if ('error' in read) throw new ParseError(read.error, base + read.offset);
      tokens.push({ kind: 'string', value: read.value, offset, end: base + read.end });
      i = read.end;
      continue;
    }
    if (/\d/.test(ch) || (ch === '-' && /\d/.test(text[i + 1] ?? ''))) {
      NUMBER.lastIndex = i;
      const match = NUMBER.exec(text)!;
      tokens.push({ kind: 'number', value: Number(match[0]), offset, end: offset + match[0].length });
      i += match[0].length;
      continue;
    }
    if (IDENT_START.test(ch)) {
      let j = i + 1;
      while (j < text.length && IDENT_PART.test(text[j]!)) j += 1;
      tokens.push({ kind: 'ident', value: text.slice(i, j), offset, end: base + j });
      i = j;
      continue;
    }
    const punct = PUNCT.find((p) => text.startsWith(p, i));
    if (punct === undefined) {
      const hint = ch === '=' ? ' (use == to compare)' : ch === '&' || ch === '|' ? ` (use ${ch}${ch})` : '';
      throw new ParseError(`unexpected character "${ch}"${hint}`, offset);
    }
    tokens.push({ kind: 'punct', value: punct, offset, end: offset + punct.length });
    i += punct.length;
  }
  tokens.push({ kind: 'eof', value: '', offset: base + text.length, end: base + text.length });
  return tokens;
}

function describeToken(token: Token): string {
  switch (token.kind) {
    case 'eof':
      return 'the end of the expression';
    case 'string':
      return `string ${JSON.stringify(token.value)}`;
    case 'number':
    case 'ident':
    case 'punct':
      return `"${String(token.value)}"`;
  }
}

class Parser {
  #pos = 0;
  #depth = 0;
  constructor(readonly tokens: Token[]) {}

  get peek(): Token {
    return this.tokens[this.#pos]!;
  }

  next(): Token {
    const token = this.peek;
    if (token.kind !== 'eof') this.#pos += 1;
    return token;
  }

  isPunct(value: string): boolean {
    return this.peek.kind === 'punct' && this.peek.value === value;
  }

  expectPunct(value: string, what: string): Token {
    if (!this.isPunct(value))
      throw new ParseError(`expected ${what}, found ${describeToken(this.peek)}`, this.peek.offset);
    return this.next();
  }

  parseTop(): Expr {
    if (this.peek.kind === 'eof') throw new ParseError('empty expression', this.peek.offset);
    const expr = this.parseOr();
    // Re-read: parsing moved on since the check above (TS would keep the old narrowing).
    const after: Token = this.tokens[this.#pos]!;
    if (after.kind !== 'eof') throw new ParseError(`unexpected ${describeToken(after)}`, after.offset);
    return expr;
  }

  parseOr(): Expr {
    let left = this.parseAnd();
    while (this.isPunct('||')) {
      this.next();
      left = { kind: 'logical', op: '||', left, right: this.parseAnd(), offset: left.offset };
    }
    return left;
  }

  parseAnd(): Expr {
    let left = this.parseCompare();
    while (this.isPunct('&&')) {
      this.next();
      left = { kind: 'logical', op: '&&', left, right: this.parseCompare(), offset: left.offset };
    }
    return left;
  }

  parseCompare(): Expr {
    const left = this.parseUnary();
    const token = this.peek;
    if (token.kind === 'punct' && ['==', '!=', '<', '<=', '>', '>='].includes(token.value)) {
      this.next();
      const right = this.parseUnary();
      const after = this.peek;
      if (after.kind === 'punct' && ['==', '!=', '<', '<=', '>', '>='].includes(after.value)) {
        throw new ParseError('comparisons cannot be chained; use parentheses and && or ||', after.offset);
      }
      return { kind: 'compare', op: token.value as CompareOp, left, right, offset: left.offset };
    }
    return left;
  }

  parseUnary(): Expr {
    if (this.isPunct('!')) {
      const bang = this.next();
      return this.nested(() => ({ kind: 'not', operand: this.parseUnary(), offset: bang.offset }));
    }
    return this.parsePrimary();
  }

  nested<T>(parse: () => T): T {
    this.#depth += 1;
    if (this.#depth > MAX_DEPTH) throw new ParseError('expression nested too deeply', this.peek.offset);
    try {
      return parse();
    } finally {
      this.#depth -= 1;
    }
  }

  parsePrimary(): Expr {
    const token = this.next();
    switch (token.kind) {
      case 'number':
      case 'string':
        return { kind: 'literal', value: token.value, offset: token.offset };
      case 'ident':
        if (token.value === 'true' || token.value === 'false') {
          return { kind: 'literal', value: token.value === 'true', offset: token.offset };
        }
        if (token.value === 'null') return { kind: 'literal', value: null, offset: token.offset };
        return this.parsePath(token);
      case 'punct':
        if (token.value === '(') {
          const inner = this.nested(() => this.parseOr());
          this.expectPunct(')', '")"');
          return inner;
        }
        throw new ParseError(`unexpected ${describeToken(token)}`, token.offset);
      case 'eof':
        throw new ParseError('unexpected end of the expression', token.offset);
    }
  }

  parsePath(rootToken: Token & { kind: 'ident' }): Expr {
    const segments: PathSegment[] = [];
    let end = rootToken.end;
    for (;;) {
      if (this.isPunct('.')) {
        this.next();
        const name = this.next();
        if (name.kind !== 'ident') {
          throw new ParseError(`expected a name after ".", found ${describeToken(name)}`, name.offset);
        }
        segments.push(name.value);
        end = name.end;
      } else if (this.isPunct('[')) {
        this.next();
        const key = this.next();
        if (key.kind === 'string') segments.push(key.value);
        else if (key.kind === 'number' && Number.isInteger(key.value) && key.value >= 0)
          segments.push(key.value);
        else
          throw new ParseError(
            `expected an index or a quoted key inside [ ], found ${describeToken(key)}`,
            key.offset,
          );
        end = this.expectPunct(']', '"]"').end;
      } else {
        break;
      }
    }
    checkPathShape(rootToken.value, segments, rootToken.offset);
    return { kind: 'path', root: rootToken.value, segments, offset: rootToken.offset, end };
  }
}

/** Known roots must be used the way the language defines them; unknown roots are left to the checker. */
function checkPathShape(root: string, segments: PathSegment[], offset: number): void {
  const [first, second] = segments;
  switch (root) {
    case 'params':
      if (typeof first !== 'string') throw new ParseError('expected params.NAME', offset);
      return;
    case 'env':
      if (typeof first !== 'string' || segments.length !== 1)
        throw new ParseError('expected env.NAME', offset);
      return;
    case 'run':
      if (segments.length !== 1 || !(RUN_FIELDS as readonly PathSegment[]).includes(first ?? '')) {
        throw new ParseError(`expected run.${RUN_FIELDS.join(', run.')}`, offset);
      }
      return;
    case 'tasks':
      if (typeof first !== 'string' || !(TASK_FIELDS as readonly PathSegment[]).includes(second ?? '')) {
        throw new ParseError('expected tasks.NAME.output (or tasks.NAME.state)', offset);
      }
      if (second === 'state' && segments.length > 2)
        throw new ParseError('tasks.NAME.state has no fields', offset);
      return;
    default:
      return;
  }
}

/**
 * Parses one expression (the text between `${{` and `}}`, or a bare condition). `base` is added
 * to every offset, so positions stay relative to the enclosing string.
 */
export function parseExpression(text: string, base = 0): { expr: Expr | null; errors: ExpressionError[] } {
  try {
    const expr = new Parser(tokenize(text, base)).parseTop();
    return { expr, errors: [] };
  } catch (error) {
    if (error instanceof ParseError)
      return { expr: null, errors: [{ message: error.message, offset: error.offset }] };
    throw error;
  }
}

/** `tasks.a.output.rows[0]["a key"]`, as the user would write it. */
export function formatPath(root: string, segments: readonly PathSegment[]): string {
  let text = root;
  for (const segment of segments) {
    if (typeof segment === 'number') text += `[${segment}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(segment)) text += `.${segment}`;
    else text += `[${JSON.stringify(segment)}]`;
  }
  return text;
}
