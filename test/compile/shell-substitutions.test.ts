import { afterAll, describe, expect, it } from 'vitest';
import { createBuiltinRegistry } from '../../src/handlers/builtins.js';
import { loadPipelineText } from '../../src/project/load-pipeline.js';
import { tempProject, weft } from '../cli/helpers.js';

/** `CODE line:column` of every diagnostic of a pipeline checked with the built-in handlers. */
function where(yaml: string): string[] {
  const loaded = loadPipelineText('p.yaml', yaml, { registry: createBuiltinRegistry() });
  return loaded.diagnostics.map((d) => `${d.code} ${d.line}:${d.column}`);
}

/** One shell task whose command is `command`, a double-quoted YAML string on line 7. */
const oneTask = (command: string) => `name: p
params:
  v: { type: string }
tasks:
  t:
    handler: shell
    with: { command: ${JSON.stringify(command)} }
`;

describe('validate: expressions in shell commands', () => {
  it('accepts an expression as a word, inside "…", inside \'…\' and inside $( … ) (the reported reproductions)', () => {
    expect(
      where(`name: p
params:
  v: { type: string }
tasks:
  t:
    handler: shell
    with:
      command: echo "x\${{ params.v }}" > out; echo 'x\${{ params.v }}' $(printf %s \${{ params.v }}) \${{ params.v }}
`),
    ).toEqual([]);
  });

  // `    with: { command: "` puts the command's first character at column 23 of line 7; a \" in the
  // YAML (the unterminated case) shifts what follows by one: positions are the file's.
  it.each([
    ['echo `echo ${{ params.v }}`', 'EXPRESSION_SHELL_CONTEXT 7:34'],
    ['echo $(( ${{ params.v }} + 1 ))', 'EXPRESSION_SHELL_CONTEXT 7:32'],
    ['(( n = ${{ params.v }} ))', 'EXPRESSION_SHELL_CONTEXT 7:30'],
    ['[[ -n ${{ params.v }} ]]', 'EXPRESSION_SHELL_CONTEXT 7:29'],
    ['echo ${X:-${{ params.v }}}', 'EXPRESSION_SHELL_CONTEXT 7:33'],
    ['echo $${{ params.v }}', 'EXPRESSION_SHELL_CONTEXT 7:29'],
    ['echo "abc ${{ params.v }}', 'EXPRESSION_SHELL_CONTEXT 7:34'],
    ['true # ${{ params.v }}', 'EXPRESSION_SHELL_CONTEXT 7:30'],
  ])('refuses %s with its position', (command, expected) => {
    expect(where(oneTask(command))).toEqual([expected]);
  });

  it('refuses an expression in a here-document body at its line and column, in a block scalar', () => {
    const yaml = `name: p
params:
  v: { type: string }
tasks:
  t:
    handler: shell
    with:
      command: |
        set -e
        cat <<EOF > out
        hello \${{ params.v }}
        EOF
        echo \${{ params.v }}
`;
    const loaded = loadPipelineText('p.yaml', yaml, { registry: createBuiltinRegistry() });
    expect(loaded.diagnostics.map((d) => `${d.code} ${d.line}:${d.column}`)).toEqual([
      'EXPRESSION_SHELL_CONTEXT 11:15',
    ]);
    const [diagnostic] = loaded.diagnostics;
    expect(diagnostic!.message).toMatch(/here-document body/);
    expect(diagnostic!.hint).toMatch(/its own word/);
  });

  it('checks hooks and every handler that declares shellQuoted arguments', () => {
    const yaml = `name: p
params:
  v: { type: string }
on_failure:
  - handler: shell
    with: { command: "echo \`date\` \${{ params.v }} \`echo \${{ params.v }}\`" }
tasks:
  t:
    handler: noop
    with: { command: "\`echo \${{ params.v }}\`" }
`;
    // The hook's second expression only; noop does not run scripts, so its `command` is data.
    expect(where(yaml)).toEqual(['EXPRESSION_SHELL_CONTEXT 6:57']);
  });

  it('leaves a command that is one whole expression alone: its value is the script', () => {
    expect(where(oneTask('${{ params.v }}'))).toEqual([]);
  });
});

describe('weft validate and weft plan report it', () => {
  const project = tempProject({
    'pipelines/doc.yaml': [
      'name: doc',
      'params:',
      '  v: { type: string, default: x }',
      'tasks:',
      '  t:',
      '    handler: shell',
      '    with:',
      '      command: |',
      '        cat <<EOF',
      '        ${{ params.v }}',
      '        EOF',
      '',
    ].join('\n'),
  });
  afterAll(() => project.cleanup());

  it('validate: code, line and column', () => {
    const result = weft(['validate', '--format', 'json', 'pipelines/doc.yaml'], { cwd: project.dir });
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout) as {
      files: { errors: { code: string; line: number; column: number }[] }[];
    };
    expect(report.files[0]!.errors.map((e) => `${e.code} ${e.line}:${e.column}`)).toEqual([
      'EXPRESSION_SHELL_CONTEXT 10:9',
    ]);
  });

  it('plan: refuses to plan it, with the position', () => {
    const result = weft(['plan', 'pipelines/doc.yaml'], { cwd: project.dir });
    expect(result.code).toBe(1);
    expect(`${result.stdout}${result.stderr}`).toContain('doc.yaml:10:9');
    expect(`${result.stdout}${result.stderr}`).toContain('EXPRESSION_SHELL_CONTEXT');
  });
});
