import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Ajv2020, type ErrorObject } from 'ajv/dist/2020.js';
import { STRICT_AJV_OPTIONS } from '../core/ajv-options.js';
import type { Diagnostic, DiagnosticCode, DocPath } from '../errors.js';
import { decodeUtf8, encodingDiagnostic } from '../pipeline/decode-utf8.js';
import { MAX_PIPELINE_BYTES, parsePipelineText } from '../pipeline/load.js';
import type { SourceDocument } from '../pipeline/source.js';
import { suggest } from '../pipeline/suggest.js';
import { TEST_FILE_SCHEMA, type TestFileSpec } from './test-file-schema.js';

export interface LoadedTestFile {
  file: string;
  source: SourceDocument | null;
  /** Null when any error was found. */
  spec: TestFileSpec | null;
  diagnostics: Diagnostic[];
}

let validate: ReturnType<Ajv2020['compile']> | undefined;

/** Reads a `*.test.yaml` with the pipeline loader (same YAML rules and limits) and checks its shape. */
export async function loadTestFile(file: string, options: { cwd?: string } = {}): Promise<LoadedTestFile> {
  const path = resolve(options.cwd ?? process.cwd(), file);
  let bytes: Buffer;
  try {
    const info = await stat(path);
    if (info.size > MAX_PIPELINE_BYTES) {
      return {
        file,
        source: null,
        spec: null,
        diagnostics: [fileProblem(file, 'FILE_TOO_LARGE', `${file} is too large`)],
      };
    }
    bytes = await readFile(path);
  } catch (error) {
    return {
      file,
      source: null,
      spec: null,
      diagnostics: [fileProblem(file, 'FILE_UNREADABLE', `cannot read ${file}: ${(error as Error).message}`)],
    };
  }
  const decoded = decodeUtf8(bytes);
  if (!decoded.ok)
    return { file, source: null, spec: null, diagnostics: [encodingDiagnostic(file, decoded)] };
  return parseTestFile(file, decoded.text);
}

export function parseTestFile(file: string, text: string): LoadedTestFile {
  const parsed = parsePipelineText(file, text);
  if (parsed.diagnostics.some((d) => d.severity === 'error')) {
    return { file, source: parsed.source, spec: null, diagnostics: parsed.diagnostics };
  }
  const source = parsed.source;
  validate ??= new Ajv2020({ ...STRICT_AJV_OPTIONS, verbose: true }).compile(TEST_FILE_SCHEMA);
  if (validate(source.value)) {
    return { file, source, spec: source.value as TestFileSpec, diagnostics: parsed.diagnostics };
  }
  const diagnostics = (validate.errors ?? []).map((error) => toDiagnostic(error, source));
  return { file, source, spec: null, diagnostics: dedupe([...parsed.diagnostics, ...diagnostics]) };
}

function fileProblem(file: string, code: DiagnosticCode, message: string): Diagnostic {
  return { code, severity: 'error', message, file, line: 1, column: 1, path: [] };
}

function toDocPath(instancePath: string): DocPath {
  if (instancePath === '') return [];
  return instancePath
    .slice(1)
    .split('/')
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((part) => (/^\d+$/.test(part) ? Number(part) : part));
}

function toDiagnostic(error: ErrorObject, source: SourceDocument): Diagnostic {
  const path = toDocPath(error.instancePath);
  const where = path.length === 0 ? 'the test file' : `\`${path.join('.')}\``;
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const allowed = Object.keys((error.parentSchema?.properties as object | undefined) ?? {});
      const guess = suggest(key, allowed);
      return source.diagnosticAt(
        [...path, key],
        {
          code: 'SCHEMA_UNKNOWN_KEY',
          message: `unknown key \`${key}\` in ${where}`,
          hint: guess ? `did you mean \`${guess}\`?` : `allowed keys: ${allowed.join(', ')}`,
        },
        { key: true },
      );
    }
    case 'required':
      return source.diagnosticAt(
        path,
        {
          code: 'SCHEMA_MISSING_KEY',
          message: `${where} is missing required key \`${String(params.missingProperty)}\``,
        },
        { key: path.length > 0 },
      );
    case 'type':
      return source.diagnosticAt(path, {
        code: 'SCHEMA_TYPE',
        message: `${where} must be ${String(params.type)}`,
      });
    case 'enum':
      return source.diagnosticAt(path, {
        code: 'SCHEMA_ENUM',
        message: `${where} must be one of: ${((params.allowedValues as unknown[]) ?? []).join(', ')}`,
      });
    case 'minimum':
    case 'minItems':
    case 'minLength':
      return source.diagnosticAt(path, {
        code: 'SCHEMA_RANGE',
        message: `${where} ${error.message ?? 'is out of range'}`,
      });
    default:
      return source.diagnosticAt(path, {
        code: 'SCHEMA_INVALID',
        message: `${where} ${error.message ?? 'is invalid'}`,
      });
  }
}

function dedupe(diagnostics: Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  return diagnostics
    .filter((d) => {
      const key = `${d.code}|${d.line}|${d.column}|${d.message}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    })
    .sort((a, b) => a.line - b.line || a.column - b.column);
}
