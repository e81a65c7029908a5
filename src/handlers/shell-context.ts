/**
 * Where each `${{ … }}` of a shell command template sits in the shell's grammar, so that its value
 * can be quoted for exactly that spot (see `quoteForShellContext`) or refused when no quoting is
 * safe there. Pure: a template in, one context per expression out, in order.
 *
 * The scanner follows POSIX sh as dash and bash read it. Wherever the two disagree, or a value
 * could change how the rest of the command parses (a here-document body, a comment), the
 * expression is refused rather than guessed at: a refusal is a compile-time error with a hint,
 * a wrong guess is an injection.
 */

/** A template split into text and expressions (`TemplatePart` from pipeline/expressions fits). */
export type ShellTemplatePart = { kind: 'text'; text: string } | { kind: 'expr' };

/** Why an expression cannot be substituted where it is. */
export type ShellRefusal =
  | 'backticks'
  | 'arithmetic'
  | 'arithmetic-command'
  | 'conditional'
  | 'parameter-expansion'
  | 'here-document'
  | 'here-document-delimiter'
  | 'comment'
  | 'after-dollar'
  | 'after-backslash'
  | 'ansi-c-quotes'
  | 'locale-quotes'
  | 'case-in-substitution'
  | 'dollar-bracket'
  | 'unterminated';

export type ShellContext =
  /**
   * Unquoted: its own word or part of one (also at the top level of a `$( … )`). `whole`: a word
   * by itself, between separators, and not the target of a redirection.
   */
  | { kind: 'word'; whole: boolean }
  /** Inside '…'. */
  | { kind: 'single' }
  /** Inside "…". */
  | { kind: 'double' }
  | { kind: 'refused'; refusal: ShellRefusal };

export type QuotableShellContext = Exclude<ShellContext, { kind: 'refused' }>;

/**
 * Characters that mean nothing to the shell in a word by itself: no globbing, expansion, quoting,
 * assignment (=) or tilde (~, and : which starts another tilde prefix in an assignment).
 */
const BARE_WORD = /^[A-Za-z0-9_./@%+,-]+$/;
/** Words the shell reads as syntax when they stand unquoted where a command name may be. */
const RESERVED_WORDS = new Set(
  'if then else elif fi do done case esac while until for in function select time coproc'.split(' '),
);

/**
 * The value as text to splice into the template at a spot of the given kind, so that the shell
 * reads back exactly `value`:
 *  - word: one single-quoted string ('…', each ' written '\''); left bare when it is a whole word
 *    of BARE_WORD characters and no reserved word, which reads back the same (and keeps `weft plan`
 *    readable);
 *  - single: inside an open '…', each ' written '\'' (the string stays one word);
 *  - double: inside an open "…", a backslash before each \ $ ` " (the only characters a backslash
 *    escapes there, POSIX 2.2.3; a newline stays literal).
 */
export function quoteForShellContext(value: string, context: QuotableShellContext): string {
  switch (context.kind) {
    case 'word':
      if (context.whole && BARE_WORD.test(value) && !RESERVED_WORDS.has(value)) return value;
      return `'${value.replace(/'/g, `'\\''`)}'`;
    case 'single':
      return value.replace(/'/g, `'\\''`);
    case 'double':
      return value.replace(/[\\$`"]/g, '\\$&');
  }
}

/** Where a refused expression is, and where to put it instead. */
export function describeShellRefusal(refusal: ShellRefusal): { where: string; advice: string } {
  switch (refusal) {
    case 'backticks':
      return {
        where: 'inside `…` (backticks), whose text the shell unescapes again before running it',
        advice: 'write $( … ) instead of backticks',
      };
    case 'arithmetic':
      return {
        where: 'inside $(( … )) (arithmetic), which evaluates its text as code',
        advice: 'set a variable first (n=${{ … }}) and write $n inside $(( ))',
      };
    case 'arithmetic-command':
      return {
        where: 'inside (( … )) (arithmetic in bash), which evaluates its text as code',
        advice: 'set a variable first (n=${{ … }}) and use "$n" in a test such as [ "$n" -gt 0 ]',
      };
    case 'conditional':
      return {
        where: 'inside [[ … ]], whose operands bash may evaluate as arithmetic code',
        advice: 'use [ … ] (test) with the expression as its own word or in double quotes',
      };
    case 'parameter-expansion':
      return {
        where: 'inside ${ … } (parameter expansion), whose quoting rules differ between shells',
        advice: 'set a variable first (v=${{ … }}) and write ${name:-$v}',
      };
    case 'here-document':
      return {
        where: 'inside a here-document body, where a line of the value could end the document early',
        advice:
          'set a variable before the here-document (v=${{ … }}) and write $v in the body (with an unquoted delimiter)',
      };
    case 'here-document-delimiter':
      return {
        where:
          'in or after a here-document delimiter weft cannot read (<<WORD with an expression or an expansion in it)',
        advice: 'write the delimiter as plain text, e.g. <<EOF',
      };
    case 'comment':
      return {
        where: 'inside a # comment, which a newline in the value would end',
        advice: 'move it out of the comment',
      };
    case 'after-dollar':
      return {
        where: 'right after a $, which would make a variable name of the value',
        advice: 'remove the $, or separate it: "$x"${{ … }}',
      };
    case 'after-backslash':
      return {
        where: 'right after a \\, which would escape the first character of the quoted value',
        advice: 'remove the backslash',
      };
    case 'ansi-c-quotes':
      return {
        where: "inside or after $'…', which bash and dash read differently",
        advice: 'use plain \'…\' or "…" quotes',
      };
    case 'locale-quotes':
      return {
        where: 'inside $"…", which bash may replace by a translation',
        advice: 'use plain "…" quotes',
      };
    case 'case-in-substitution':
      return {
        where: 'after a case statement inside $( … ), where shells disagree on which ) ends the substitution',
        advice: 'move the case statement into a shell function defined before the $( … )',
      };
    case 'dollar-bracket':
      return {
        where: 'after $[ (old bash arithmetic), which bash and dash read differently',
        advice: 'write $(( … )) or remove the $[',
      };
    case 'unterminated':
      return {
        where: 'after a quote, $( or ${ that is never closed',
        advice: 'close it',
      };
  }
}

type FrameKind =
  | 'code'
  | 'single'
  | 'double'
  | 'backtick'
  | 'arithmetic'
  | 'param'
  | 'comment'
  | 'ansi'
  | 'locale';

interface Frame {
  kind: FrameKind;
  /** Index (in units) where it opened. */
  start: number;
  /** code: closed by `)` (a `$( … )` or `<( … )`); arithmetic: `(( … ))` rather than `$(( … ))`. */
  subst: boolean;
  /** code and arithmetic: parentheses open inside it. */
  depth: number;
  /** code: at the start of a word (where `#` begins a comment and `((` arithmetic). */
  wordStart: boolean;
  /** code: the unquoted word being read, null once it holds anything else (quotes, expressions). */
  word: string | null;
  /** code: inside `[[ … ]]`. */
  cond: boolean;
}

/** Frames whose contents no quoting makes safe: an expression anywhere under one is refused. */
const UNSAFE: Partial<Record<FrameKind, ShellRefusal>> = {
  backtick: 'backticks',
  param: 'parameter-expansion',
  comment: 'comment',
  ansi: 'ansi-c-quotes',
  locale: 'locale-quotes',
};

const BLANK = new Set([' ', '\t']);
/** Characters that end an unquoted word (besides blanks and newline). */
const OPERATOR = new Set([';', '&', '|', '<', '>', '(', ')']);
/** What may stand right before and right after a word by itself (see isWholeWord). */
const WORD_BEFORE = new Set([' ', '\t', '\n', ';', '|', '(']);
const WORD_AFTER = new Set([' ', '\t', '\n', ';', '|', '&', ')']);

/** A character, or an expression (its index among the template's expressions). */
type Unit = string | number;

/**
 * The context of every expression in `parts`, in order. Never throws: anything it cannot read
 * with certainty ends in a refusal.
 */
export function scanShellTemplate(parts: readonly ShellTemplatePart[]): ShellContext[] {
  const units: Unit[] = [];
  let holes = 0;
  for (const part of parts) {
    if (part.kind === 'expr') units.push(holes++);
    else for (const ch of part.text) units.push(ch);
  }
  const results: ShellContext[] = Array.from({ length: holes }, () => ({ kind: 'word', whole: false }));
  const holeAt: number[] = [];
  units.forEach((unit, i) => {
    if (typeof unit === 'number') holeAt[unit] = i;
  });
  const refuse = (hole: number, refusal: ShellRefusal): void => {
    results[hole] = { kind: 'refused', refusal };
  };

  const newFrame = (kind: FrameKind, start: number, subst = false): Frame => ({
    kind,
    start,
    subst,
    depth: 0,
    wordStart: true,
    word: null,
    cond: false,
  });
  const stack: Frame[] = [newFrame('code', 0)];
  const top = (): Frame => stack[stack.length - 1]!;
  const push = (kind: FrameKind, start: number, subst = false): void => {
    const parent = top();
    parent.wordStart = false;
    parent.word = null;
    stack.push(newFrame(kind, start, subst));
  };
  const pop = (): void => {
    stack.pop();
    const parent = top();
    parent.wordStart = false;
    parent.word = null;
  };

  /** Once set, every later expression is refused with it: the scanner no longer knows where it is. */
  let unsure: ShellRefusal | null = null;
  /** Here-documents whose bodies start after the next unquoted newline. */
  const pending: { delimiter: string; stripTabs: boolean }[] = [];
  /** The here-document whose body is being read, its current line, and whether that line holds an expression. */
  let body: { delimiter: string; stripTabs: boolean } | null = null;
  let line = '';
  let lineHasHole = false;

  /**
   * Whether the expression at `k` is a word by itself: a separator (or the start) before it and
   * after it, and no redirection operator before it (`>&${{ x }}` with x = "-" closes a file).
   */
  const isWholeWord = (k: number, frame: Frame): boolean => {
    if (!frame.wordStart) return false;
    const before = units[k - 1];
    if (before !== undefined && !(typeof before === 'string' && WORD_BEFORE.has(before))) return false;
    let j = k - 1;
    while (typeof units[j] === 'string' && BLANK.has(units[j] as string)) j--;
    const token = units[j];
    if (token === '<' || token === '>' || token === '&') return false;
    const after = units[k + 1];
    return after === undefined || (typeof after === 'string' && WORD_AFTER.has(after));
  };

  const contextOfHole = (k: number): ShellContext => {
    for (const frame of stack) {
      const refusal = UNSAFE[frame.kind];
      if (refusal) return { kind: 'refused', refusal };
      if (frame.kind === 'arithmetic') {
        return { kind: 'refused', refusal: frame.subst ? 'arithmetic-command' : 'arithmetic' };
      }
      if (frame.kind === 'code' && frame.cond) return { kind: 'refused', refusal: 'conditional' };
    }
    const frame = top();
    if (frame.kind === 'single') return { kind: 'single' };
    if (frame.kind === 'double') return { kind: 'double' };
    return { kind: 'word', whole: isWholeWord(k, frame) };
  };

  /** A word of a code frame ended: the few keywords that change how the rest is read. */
  const endWord = (frame: Frame): void => {
    if (frame.word === 'case' && frame.subst) unsure ??= 'case-in-substitution';
    else if (frame.word === '[[') frame.cond = true;
    else if (frame.word === ']]') frame.cond = false;
    frame.word = null;
  };

  /**
   * Reads a here-document operator at `k` (`<<` or `<<-`) and its delimiter; returns the index
   * after them. A delimiter it cannot read for certain makes the scanner unsure.
   */
  const readHereDocument = (k: number): number => {
    let j = k + 2;
    let stripTabs = false;
    if (units[j] === '-') {
      stripTabs = true;
      j++;
    }
    while (typeof units[j] === 'string' && BLANK.has(units[j] as string)) j++;
    let delimiter = '';
    for (;;) {
      const u = units[j];
      if (u === undefined) break;
      if (typeof u === 'number' || u === '$' || u === '`') {
        unsure = 'here-document-delimiter';
        return j;
      }
      if (BLANK.has(u) || u === '\n' || OPERATOR.has(u)) break;
      if (u === "'" || u === '"') {
        const close = units.indexOf(u, j + 1);
        const inside = close < 0 ? [] : units.slice(j + 1, close);
        if (close < 0 || inside.some((x) => typeof x === 'number' || x === '$' || x === '`' || x === '\\')) {
          unsure = close < 0 ? 'unterminated' : 'here-document-delimiter';
          return j;
        }
        delimiter += inside.join('');
        j = close + 1;
        continue;
      }
      if (u === '\\') {
        const next = units[j + 1];
        if (typeof next !== 'string') {
          unsure = 'here-document-delimiter';
          return j + 1;
        }
        delimiter += next;
        j += 2;
        continue;
      }
      delimiter += u;
      j++;
    }
    if (delimiter === '') unsure = 'here-document-delimiter';
    else pending.push({ delimiter, stripTabs });
    return j;
  };

  /** A line of a here-document body ended: is it the delimiter? */
  const endBodyLine = (): void => {
    const text = body?.stripTabs ? line.replace(/^\t+/, '') : line;
    if (!lineHasHole && body !== null && text === body.delimiter) body = pending.shift() ?? null;
    line = '';
    lineHasHole = false;
  };

  /**
   * A `$` at `k` in a code, double-quoted, arithmetic or parameter frame; returns the index after
   * what it opened.
   */
  const readDollar = (k: number, frame: Frame): number => {
    const next = units[k + 1];
    if (typeof next === 'number') {
      refuse(next, 'after-dollar');
      return k + 2;
    }
    if (next === '(') {
      if (units[k + 2] === '(') {
        push('arithmetic', k);
        return k + 3;
      }
      push('code', k, true);
      return k + 2;
    }
    if (next === '{') {
      push('param', k);
      return k + 2;
    }
    if (next === '[') {
      unsure ??= 'dollar-bracket';
      return k + 2;
    }
    // Inside "…", $' and $" are a literal $ followed by the quote.
    if (frame.kind !== 'double' && next === "'") {
      push('ansi', k);
      return k + 2;
    }
    if (frame.kind !== 'double' && next === '"') {
      push('locale', k);
      return k + 2;
    }
    if (frame.kind === 'code') {
      frame.wordStart = false;
      frame.word = null;
    }
    return k + 1;
  };

  /** A backslash at `k`: escapes the next unit; before an expression it would escape its opening quote. */
  const readBackslash = (k: number, frame: Frame): number => {
    const next = units[k + 1];
    if (typeof next === 'number') refuse(next, 'after-backslash');
    if (frame.kind === 'code' && next !== '\n') {
      frame.wordStart = false;
      frame.word = null;
    }
    return k + 2;
  };

  let k = 0;
  while (k < units.length) {
    const u = units[k]!;
    if (unsure !== null) {
      if (typeof u === 'number') refuse(u, unsure);
      k++;
      continue;
    }
    if (body !== null) {
      if (typeof u === 'number') {
        refuse(u, 'here-document');
        lineHasHole = true;
      } else if (u === '\n') endBodyLine();
      else line += u;
      k++;
      continue;
    }
    const frame = top();
    if (typeof u === 'number') {
      results[u] = contextOfHole(k);
      frame.wordStart = false;
      frame.word = null;
      k++;
      continue;
    }
    switch (frame.kind) {
      case 'code':
        k = readCode(k, u, frame);
        break;
      case 'single':
        if (u === "'") pop();
        k++;
        break;
      case 'ansi':
        if (u === '\\') unsure = 'ansi-c-quotes';
        else if (u === "'") pop();
        k++;
        break;
      case 'double':
      case 'locale':
        if (u === '"') {
          pop();
          k++;
        } else if (u === '\\') k = readBackslash(k, frame);
        else if (u === '`') {
          push('backtick', k);
          k++;
        } else if (u === '$') k = readDollar(k, frame);
        else k++;
        break;
      case 'backtick':
        if (u === '\\') k = readBackslash(k, frame);
        else {
          if (u === '`') pop();
          k++;
        }
        break;
      case 'comment':
        // The newline itself belongs to the code (it may start a here-document body).
        if (u === '\n') pop();
        else k++;
        break;
      case 'arithmetic':
        k = readArithmetic(k, u, frame);
        break;
      case 'param':
        k = readParam(k, u, frame);
        break;
    }
  }
  if (body !== null) endBodyLine();

  // Anything still open (but a comment, which the end of the text closes) makes every expression
  // after its opening uncertain: the shell rejects the command, or reads it some other way.
  const open = stack.slice(1).find((frame) => frame.kind !== 'comment');
  if (open !== undefined && unsure === null) {
    results.forEach((context, hole) => {
      if (context.kind !== 'refused' && holeAt[hole]! > open.start) refuse(hole, 'unterminated');
    });
  }
  return results;

  function readCode(k: number, u: string, frame: Frame): number {
    if (BLANK.has(u) || u === '\n' || u === ';' || u === '&' || u === '|') {
      endWord(frame);
      frame.wordStart = true;
      if (u === '\n' && pending.length > 0) body = pending.shift()!;
      return k + 1;
    }
    if (u === '<' || u === '>') {
      endWord(frame);
      frame.wordStart = true;
      if (u === '<' && units[k + 1] === '<') {
        if (units[k + 2] === '<') return k + 3; // <<< (bash here-string): the next word is a plain word
        return readHereDocument(k);
      }
      if (units[k + 1] === '(') {
        // <( … ) and >( … ) (bash process substitution): code, like $( … ).
        push('code', k, true);
        return k + 2;
      }
      return k + 1;
    }
    if (u === '(') {
      const atWordStart = frame.wordStart;
      endWord(frame);
      frame.wordStart = true;
      if (atWordStart && units[k + 1] === '(') {
        push('arithmetic', k, true);
        return k + 2;
      }
      frame.depth++;
      return k + 1;
    }
    if (u === ')') {
      endWord(frame);
      frame.wordStart = true;
      if (frame.depth > 0) frame.depth--;
      else if (frame.subst) pop();
      return k + 1;
    }
    if (u === '#' && frame.wordStart) {
      push('comment', k);
      return k + 1;
    }
    if (u === '\\') return readBackslash(k, frame);
    if (u === "'") {
      push('single', k);
      return k + 1;
    }
    if (u === '"') {
      push('double', k);
      return k + 1;
    }
    if (u === '`') {
      push('backtick', k);
      return k + 1;
    }
    if (u === '$') return readDollar(k, frame);
    if (frame.wordStart) frame.word = '';
    if (frame.word !== null) frame.word += u;
    frame.wordStart = false;
    return k + 1;
  }

  function readArithmetic(k: number, u: string, frame: Frame): number {
    if (u === '(') {
      frame.depth++;
      return k + 1;
    }
    if (u === ')') {
      if (frame.depth > 0) {
        frame.depth--;
        return k + 1;
      }
      if (units[k + 1] === ')') {
        pop();
        return k + 2;
      }
      unsure ??= frame.subst ? 'arithmetic-command' : 'arithmetic';
      return k + 1;
    }
    return readNested(k, u, frame);
  }

  function readParam(k: number, u: string, frame: Frame): number {
    if (u === '}') {
      pop();
      return k + 1;
    }
    // Inside "${ … }", a ' quotes in bash and is literal in dash; a nested { is matched by some
    // shells and not others.
    if (u === '{' || (u === "'" && stack.some((f) => f.kind === 'double'))) {
      unsure ??= 'parameter-expansion';
      return k + 1;
    }
    return readNested(k, u, frame);
  }

  /** Quotes and substitutions nested in arithmetic or a parameter expansion. */
  function readNested(k: number, u: string, frame: Frame): number {
    if (u === '\\') return readBackslash(k, frame);
    if (u === '$') return readDollar(k, frame);
    if (u === "'" || u === '"' || u === '`') {
      push(u === "'" ? 'single' : u === '"' ? 'double' : 'backtick', k);
    }
    return k + 1;
  }
}
