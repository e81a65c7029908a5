import { parsePipelineText } from './src/pipeline/load.js';
const show = (label: string, text: string) => {
  const t = performance.now();
  const { source, diagnostics } = parsePipelineText('x.yaml', text);
  console.log(label, (performance.now() - t).toFixed(1) + 'ms', JSON.stringify(diagnostics.map((d) => [d.code, d.line, d.column, d.message])), JSON.stringify(source.value)?.slice(0, 100));
  return source;
};
show('empty', '');
show('comments', '# a\n# b\n');
show('dashes', '---\n');
show('null', '~\n');
show('dup', 'a: 1\nb: 2\na: 3\n');
show('dupnum', '1: 1\n"1": 2\n');
show('tag', 'a: !foo 1\n');
show('binary', 'b: !!binary aGVsbG8=\n');
show('str', 'c: !!str 12\n');
show('multi', 'a: 1\n---\nb: 2\n');
show('flowdeep', '['.repeat(10000) + ']'.repeat(10000));
let t = ''; for (let i = 0; i < 1000; i++) t += ' '.repeat(i) + 'a:\n';
show('blockdeep', t);
show('seqdeep', '- '.repeat(10000) + 'x\n');
show('self', 'a: &x [*x]\n');
show('missing', 'a: *x\n');
let lol = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n';
for (let i = 1; i < 9; i++) { const p = String.fromCharCode(97 + i - 1), c = String.fromCharCode(97 + i); lol += `${c}: &${c} [${Array(9).fill('*' + p).join(',')}]\n`; }
show('lol', lol);
const s = show('proto', 'name: x\n__proto__: {polluted: 1}\nconstructor: 2\ntasks:\n  a:\n  b: {retries: 3}\n');
console.log(({} as any).polluted, Object.keys(s.value as object));
for (const p of [[], ['name'], ['tasks', 'a'], ['tasks', 'b', 'retries'], ['tasks', 'b', 'nope'], ['tasks', 'zz']]) console.log(JSON.stringify(p), s.positionOf(p), s.positionOf(p, { key: true }));
