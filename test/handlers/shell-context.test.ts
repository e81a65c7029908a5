import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { WeftError } from '../../src/errors.js';
import {
  quoteForShellContext,
  scanShellTemplate,
  type ShellContext,
} from '../../src/handlers/shell-context.js';
import { quoteShellSubstitution } from '../../src/handlers/shell-quote.js';
import { parseTemplate, resolveTemplate, type ExpressionScope } from '../../src/pipeline/expressions.js';

/** The contexts of a template's expressions, as words: word, single, double, or the refusal. */
function contexts(template: string): string[] {
  const { parts, errors } = parseTemplate(template);
  expect(errors).toEqual([]);
  return scanShellTemplate(parts).map((c: ShellContext) => (c.kind === 'refused' ? c.refusal : c.kind));
}

/** The command the engine would run for `template` with params p0, p1, … = values. */
function substitute(template: string, values: readonly string[]): string {
  const params: Record<string, string> = {};
  values.forEach((v, i) => (params[`p${i}`] = v));
  const scope: ExpressionScope = {
    params,
    env: {},
    tasks: {},
    run: { id: 'r', scheduled_for: null, attempt: 1 },
  };
  const out = resolveTemplate({ command: template }, scope, {
    quoteKeys: ['command'],
    quote: quoteShellSubstitution,
  }) as { command: string };
  return out.command;
}

const SHELLS = ['/bin/sh', ...['/usr/bin/bash', '/bin/bash'].filter(existsSync).slice(0, 1)];

function sh(shell: string, script: string, cwd?: string): { stdout: string; status: number | null } {
  const result = spawnSync(shell, ['-c', script], { input: '', encoding: 'utf8', timeout: 10_000, cwd });
  return { stdout: result.stdout, status: result.status };
}

describe('scanShellTemplate: where each expression sits', () => {
  it.each([
    ['echo ${{ x }}', ['word']],
    ['echo x${{ x }}y ${{ y }}', ['word', 'word']],
    ['echo "x${{ x }}" > out', ['double']],
    ["echo 'x${{ x }}'", ['single']],
    ['echo "it\'s ${{ x }}" \'say "${{ y }}"\'', ['double', 'single']],
    ['echo $(printf %s ${{ x }}) "$(printf %s "${{ y }}")"', ['word', 'double']],
    ['echo "$(echo \'${{ x }}\')"', ['single']],
    ['X=${{ x }} cmd > ${{ y }} 2>&1', ['word', 'word']],
    ['cat <<<${{ x }}', ['word']],
    ['diff <(cat ${{ x }}) f', ['word']],
    ['echo a#${{ x }}', ['word']],
    ['echo \\"${{ x }}', ['word']],
    ['echo ${{ x }}#', ['word']],
    ['echo `echo ${{ x }}`', ['backticks']],
    ['echo "`echo ${{ x }}`"', ['backticks']],
    ['echo $(( ${{ x }} + 1 ))', ['arithmetic']],
    ['echo $(( $(echo ${{ x }}) ))', ['arithmetic']],
    ['(( n = ${{ x }} ))', ['arithmetic-command']],
    ['[[ -n ${{ x }} ]] && echo ${{ y }}', ['conditional', 'word']],
    ['[[ $a -eq "${{ x }}" ]]', ['conditional']],
    ['echo ${X:-${{ x }}} "${Y:-${{ y }}}"', ['parameter-expansion', 'parameter-expansion']],
    ['cat <<EOF\nhi ${{ x }}\nEOF\necho ${{ y }}', ['here-document', 'word']],
    ["cat <<'EOF'\n${{ x }}\nEOF", ['here-document']],
    ['cat <<-EOF\n\tx\n\tEOF\necho ${{ x }}', ['word']],
    [
      'cat <<A <<"B"; echo "${{ x }}"\n${{ y }}\nA\n${{ z }}\nB\necho ${{ w }}',
      ['double', 'here-document', 'here-document', 'word'],
    ],
    ['x=$(cat <<EOF\n${{ x }}\nEOF\n)\necho ${{ y }}', ['here-document', 'word']],
    ['cat <<EOF # note\n${{ x }}\nEOF', ['here-document']],
    ['cat <<${{ x }}\nEOF', ['here-document-delimiter']],
    ['cat <<E$X\n\nE$X\necho ${{ x }}', ['here-document-delimiter']],
    ['# ${{ x }}\necho ${{ y }}', ['comment', 'word']],
    ['echo a # say ${{ x }}\necho ${{ y }}', ['comment', 'word']],
    ['echo $${{ x }} "$${{ y }}" \'$${{ z }}\'', ['after-dollar', 'after-dollar', 'single']],
    ['echo \\${{ x }} "\\${{ y }}" \'\\${{ z }}\'', ['after-backslash', 'after-backslash', 'single']],
    ["echo $'a ${{ x }}'", ['ansi-c-quotes']],
    ["echo $'ab' ${{ x }}", ['word']],
    ["echo $'a\\'b' ${{ x }}", ['ansi-c-quotes']],
    ['echo $"a ${{ x }}"', ['locale-quotes']],
    ['echo "$\'${{ x }}"', ['double']],
    ['echo $(case a in a) echo;; esac) ${{ x }}', ['case-in-substitution']],
    ['case ${{ x }} in ${{ y }}) echo ${{ z }};; esac', ['word', 'word', 'word']],
    ['echo $[1] ${{ x }}', ['dollar-bracket']],
    ['echo "${X:-\'}\'}" ${{ x }}', ['parameter-expansion']],
    ['echo "abc ${{ x }}', ['unterminated']],
    ["echo ${{ x }} 'abc", ['word']],
    ["echo 'abc ${{ x }}", ['unterminated']],
    ['echo $(echo ${{ x }}', ['unterminated']],
    ['echo ${{ x }}\n# trailing comment', ['word']],
  ])('%j', (template, expected) => {
    expect(contexts(template)).toEqual(expected);
  });

  it.each([
    ['echo ${{ x }}', [true]],
    ['${{ x }} ${{ y }};${{ z }}|${{ w }}&', [true, true, true, true]],
    ['echo $(${{ x }}) (${{ y }})', [true, true]],
    ['echo x${{ x }} ${{ y }}x ${{ z }}${{ w }}', [false, false, false, false]],
    ['echo ${{ x }}>f ${{ y }}<f >${{ z }} 2>&${{ w }}', [false, false, false, false]],
    ['echo > ${{ x }} a && ${{ y }}', [false, false]],
    ['X=${{ x }} ~${{ y }}', [false, false]],
  ])('%j: which are words by themselves', (template, expected) => {
    const { parts } = parseTemplate(template);
    const whole = scanShellTemplate(parts).map((c) => c.kind === 'word' && c.whole);
    expect(whole).toEqual(expected);
  });

  it('leaves a plain whole word bare, and quotes anything the shell could read otherwise', () => {
    const whole = { kind: 'word', whole: true } as const;
    expect(quoteForShellContext('bob', whole)).toBe('bob');
    expect(quoteForShellContext('v1.2/x_y-z@h%+,', whole)).toBe('v1.2/x_y-z@h%+,');
    for (const value of ['', 'if', 'done', 'esac', 'in', 'A=b', 'a:b', '~root', '*', 'a b', "it's"]) {
      expect(quoteForShellContext(value, whole)).toBe(`'${value.replace(/'/g, `'\\''`)}'`);
    }
    expect(quoteForShellContext('bob', { kind: 'word', whole: false })).toBe("'bob'");
    expect(quoteForShellContext("it's", { kind: 'single' })).toBe("it'\\''s");
    expect(quoteForShellContext('a\\$`"\n\'', { kind: 'double' })).toBe('a\\\\\\$\\`\\"\n\'');
  });

  it('never throws and gives one context per expression, whatever the text', () => {
    const piece = fc.constantFrom(
      ...' \t\n;&|<>()#\\\'"`${}[]-=aEOF'.split(''),
      '<<',
      '<<-',
      '$(',
      '$((',
      '))',
      '[[ ',
      ' ]]',
      'case ',
      '${{ params.x }}',
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 60 }), (pieces) => {
        const { parts, errors } = parseTemplate(pieces.join(''));
        if (errors.length > 0) return;
        const found = scanShellTemplate(parts);
        expect(found).toHaveLength(parts.filter((p) => p.kind === 'expr').length);
      }),
      { numRuns: 2000, seed: 11 },
    );
  });
});

describe('quoteShellSubstitution: the value arrives byte for byte', () => {
  const hostile = [
    '',
    "'",
    '"',
    '\\',
    '\\\\',
    '$',
    '`',
    "'\\''",
    '$(touch /tmp/weft-never)',
    '`touch /tmp/weft-never`',
    "'; touch /tmp/weft-never; '",
    '"; touch /tmp/weft-never; "',
    '\n',
    'a\nb\n',
    '$HOME ${PATH} $1 $@',
    '* ? [a-z] {a,b} ~ ~root',
    'a[$(touch /tmp/weft-never)]',
    '\\"\\$\\`',
    '%s %n',
    'é 日本語 🙂',
    'if',
    'done',
    'A=b',
    '~',
    '-',
    '2',
  ];

  it.each(SHELLS)('%s: a word, double quotes, single quotes and $( … ), with text around', (shell) => {
    const sample = fc.sample(
      fc.string({ unit: 'binary', maxLength: 24 }).filter((s) => !s.includes('\0')),
      { numRuns: 60, seed: 5 },
    );
    const values = [...hostile, ...sample];
    // The same value in five places; printf brackets each argument. $( … ) drops trailing
    // newlines, so a '.' inside it keeps them. The last is right before a redirection (a bare 2
    // there would make it 2>&1).
    const template = values
      .map(
        (_, i) =>
          `printf '<%s>' \${{ params.p${i} }} "a\${{ params.p${i} }}b" 'c\${{ params.p${i} }}d' "$(printf '%s.' \${{ params.p${i} }})"; ` +
          `printf '<%s>' \${{ params.p${i} }}>&1`,
      )
      .join('\n');
    const { stdout, status } = sh(shell, substitute(template, values));
    expect(status).toBe(0);
    expect(stdout).toBe(values.map((v) => `<${v}><a${v}b><c${v}d><${v}.><${v}>`).join(''));
  });

  it('refuses, at run time too, an expression where no quoting is safe (EXPRESSION_FAILED, not retried)', () => {
    const template = 'echo `echo ${{ params.p0 }}`';
    let caught: unknown;
    try {
      substitute(template, ['x']);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(WeftError);
    expect((caught as WeftError).code).toBe('EXPRESSION_FAILED');
    expect((caught as WeftError).retryable).toBe(false);
    expect(() => quoteShellSubstitution('x', { template, offset: 0 })).toThrow(/no expression at offset 0/);
  });
});

describe('scanner and quoting together: no accepted template runs a value', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-shell-context-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const canary = join(dir, 'CANARY');

  // Random shell text around expressions; every template whose expressions are all accepted runs
  // with hostile values in dash and bash, and none may create the canary.
  const fragments = [
    'echo ',
    'printf %s ',
    ': ',
    'cat ',
    ' ',
    ' ',
    '"',
    "'",
    '$(',
    ')',
    '`',
    '; ',
    '\n',
    '#',
    'x',
    '=',
    '\\',
    '$',
    '${',
    '}',
    '$((',
    '))',
    '<<EOF\n',
    '\nEOF\n',
    "<<'EOF'\n",
    '<<-EOF\n',
    '\tEOF\n',
    '[[ ',
    ' ]]',
    '(',
    '((',
    '| ',
    '&& ',
    'case a in a) ',
    ';; esac',
    "$'",
    '$"',
    '{ ',
    ' }',
    '${{ params.v }}',
    '${{ params.v }}',
    '${{ params.v }}',
  ];
  const payloads = [
    `$(touch ${canary})`,
    `\`touch ${canary}\``,
    `'; touch ${canary}; '`,
    `"; touch ${canary}; "`,
    `\ntouch ${canary}\n`,
    `\nEOF\ntouch ${canary}\n`,
    `)\ntouch ${canary}\n(`,
    `}; touch ${canary}; {`,
    `a[$(touch ${canary})]`,
    `\\'; touch ${canary}; #`,
    `\\"; touch ${canary}; #`,
  ];

  it('dash and bash, seeded', () => {
    let ran = 0;
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(...fragments), { minLength: 1, maxLength: 14 }),
        fc.constantFrom(...payloads),
        (pieces, payload) => {
          const template = pieces.join('');
          const { parts, errors } = parseTemplate(template);
          if (errors.length > 0 || !parts.some((p) => p.kind === 'expr')) return;
          if (parts.length === 1) return; // one whole expression is the script itself, by design
          if (scanShellTemplate(parts).some((c) => c.kind === 'refused')) return;
          const params = { v: payload };
          const scope: ExpressionScope = {
            params,
            env: {},
            tasks: {},
            run: { id: 'r', scheduled_for: null, attempt: 1 },
          };
          const { command } = resolveTemplate({ command: template }, scope, {
            quoteKeys: ['command'],
            quote: quoteShellSubstitution,
          }) as { command: string };
          ran++;
          for (const shell of SHELLS) {
            sh(shell, command, dir);
            if (existsSync(canary)) {
              rmSync(canary);
              throw new Error(
                `${shell} ran the value of ${JSON.stringify(template)}: ${JSON.stringify(command)}`,
              );
            }
          }
        },
      ),
      { numRuns: 1500, seed: 23 },
    );
    // Not vacuous: a good share of the generated templates were accepted and run.
    expect(ran).toBeGreaterThan(100);
  }, 60_000);
});
