import { Ajv2020 } from 'ajv/dist/2020.js';
import { loadPipelineSchema } from './src/pipeline/schema.js';
const schema = loadPipelineSchema() as any;
schema.$defs.hookObject = { ...schema.$defs.hook, type: 'object' }; delete schema.$defs.hookObject.minLength;
schema.$defs.hook = { oneOf: [{ type: 'string', minLength: 1 }, { $ref: '#/$defs/hookObject' }] };
const ajv = new Ajv2020({ strict: true, allErrors: true, verbose: true, allowUnionTypes: true });
const v = ajv.compile(schema);
v({ name: 'x', tasks: { e: { on_failure: [{ handlr: 'x' }] } } });
for (const e of v.errors!) console.log(e.keyword, e.instancePath, e.schemaPath);
