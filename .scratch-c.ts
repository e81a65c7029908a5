import { parsePipelineText } from './src/pipeline/load.js';
import { validatePipelineSchema } from './src/pipeline/validate-schema.js';
const show = (text: string) => {
  const { source, diagnostics } = parsePipelineText('x.yaml', text);
  const r = validatePipelineSchema(source);
  for (const d of [...diagnostics, ...r.diagnostics]) console.log(d.code, `${d.line}:${d.column}`, d.message, d.hint ? `(${d.hint})` : '');
  console.log('spec?', r.spec !== null, '---');
};
show(`name: My ETL
tasks:
  a:
    retry: 3
    retries: three
    timeout: 5 minutes
    retry_delay: -5
    depends_on: [b, b]
    on_failure: [{with: 1}, 5]
    backoff: linear
    handlr: x
  b c: {}
  d:
  __proto__: {}
  constructor: {}
schedule: {timezone: UTC}
params:
  env: {type: str}
secrets: [1BAD]
foo: 1
`);
show('name: x\ntasks: {}\n');
show('- a\n');
show('description: x\n');
show('name: ok\ntasks:\n  a: {handler: noop, depends_on: 5, when: 3, queue: ""}\n');
