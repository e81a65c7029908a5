import { describe, expect, it } from 'vitest';
import { compilePipeline } from '../../src/compile/compile.js';
import { specFromYaml } from '../support/source-from-yaml.js';

function where(yaml: string): string[] {
  const { source, spec } = specFromYaml(yaml);
  return compilePipeline(source, spec).diagnostics.map((d) => `${d.code} ${d.line}:${d.column}`);
}

const PIPELINE = (value: string) => `name: p
params:
  p:
    type: object
    default: {}
tasks:
  a: {}
  b:
    depends_on: [a]
    with:
      v: ${value}
`;

describe('compilePipeline: expressions reaching prototype members', () => {
  // "      v: " is 9 characters: the value starts at column 10, the path after `${{ ` at 14.
  it.each([
    ['${{ params.p.constructor }}', 'EXPRESSION_SYNTAX 11:23'],
    ['${{ tasks.a.output.toString }}', 'EXPRESSION_SYNTAX 11:29'],
    ['${{ params.p.__proto__ }}', 'EXPRESSION_SYNTAX 11:23'],
    ["${{ tasks.a.output['prototype'] }}", 'EXPRESSION_SYNTAX 11:30'],
    ['x ${{ params.p.a.constructor.name }}', 'EXPRESSION_SYNTAX 11:27'],
  ])('flags %s at validate time, at the member', (value, expected) => {
    expect(where(PIPELINE(value))).toEqual([expected]);
  });

  it('flags one in a `when` condition, and says what is wrong', () => {
    const { source, spec } = specFromYaml(`name: p
tasks:
  a: {}
  b:
    depends_on: [a]
    when: tasks.a.output.valueOf == 1
`);
    const [d, ...rest] = compilePipeline(source, spec).diagnostics;
    expect(rest).toEqual([]);
    expect(`${d!.code} ${d!.line}:${d!.column}`).toBe('EXPRESSION_SYNTAX 6:26');
    expect(d!.path).toEqual(['tasks', 'b', 'when']);
    expect(d!.message).toContain('"valueOf"');
  });

  it('leaves ordinary keys alone, including ones that merely contain a member name', () => {
    expect(where(PIPELINE('${{ params.p.constructors }}'))).toEqual([]);
    expect(where(PIPELINE('${{ tasks.a.output.my_prototype }}'))).toEqual([]);
  });
});
