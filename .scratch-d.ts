import { Parser, Composer, LineCounter, parseDocument } from 'yaml';
import { parsePipelineText } from './src/pipeline/load.js';
import { validatePipelineSchema } from './src/pipeline/validate-schema.js';
const lines = ['name: big', 'tasks:'];
const id = (n: number) => `t${String(n).padStart(4, '0')}`;
for (let i = 0; i < 10_000; i++) {
  const deps = i < 3 ? '' : `, depends_on: [${id(i - 1)}, ${id(i - 2)}, ${id(i - 3)}]`;
  lines.push(`  ${id(i)}: { handler: noop${deps} }`);
}
const text = lines.join('\n') + '\n';
validatePipelineSchema(parsePipelineText('w', 'name: w\ntasks:\n  a: {}\n').source);
for (let r = 0; r < 3; r++) {
let t = performance.now();
const lc = new LineCounter();
const tokens = [...new Parser(lc.addNewLine).parse(text)];
const t1 = performance.now();
const docs = [...new Composer({ uniqueKeys: true }).compose(tokens, true, text.length)];
const t2 = performance.now();
const d0 = parseDocument(text, { uniqueKeys: false });
const t3 = performance.now();
const { source } = parsePipelineText('big', text);
const t4 = performance.now();
validatePipelineSchema(source);
const t5 = performance.now();
console.log({ parse: t1 - t, compose: t2 - t1, parseDocNoUnique: t3 - t2, mine: t4 - t3, validate: t5 - t4 });
}
