import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import type { Diagnostic, DiagnosticCode, DocPath } from '../errors.js';
import { loadPipelineSchema, PIPELINE_SCHEMA_URL, type JsonSchema } from './schema.js';
import type { SourceDocument } from './source.js';
import type { PipelineSpec } from './spec.js';
import { suggest } from './suggest.js';

export interface SchemaValidation {
  /** The validated value, typed; null when any error was found. */
  spec: PipelineSpec | null;
  diagnostics: Diagnostic[];
}

/** Keys that would mean something to JavaScript objects; refused as task names. */
export const RESERVED_TASK_NAMES: readonly string[] = ['__proto__', 'constructor', 'prototype'];

const DURATION_HINT =
  'write a number with a unit — "250ms", "30s", "5m", "1h30m", "2d" (units combine without spaces) — or a number of seconds';

let defaultValidator: ((source: SourceDocument) => SchemaValidation) | undefined;

/**
 * Checks a loaded pipeline against schema/pipeline.schema.json and reports every problem, each
 * once, in plain words, at the place in the YAML it is about. A source whose YAML did not parse
 * (`value` undefined) gets no diagnostics here: the loader already reported why.
 */
export function validatePipelineSchema(source: SourceDocument): SchemaValidation {
  defaultValidator ??= precompiledValidator() ?? createPipelineValidator(loadPipelineSchema());
  return defaultValidator(source);
}

/**
 * The validator `npm run build` compiled ahead of time (scripts/build-validators.mjs), when it was
 * made from the schema on disk now; null otherwise (running from src/, or a stale build).
 */
function precompiledValidator(): ((source: SourceDocument) => SchemaValidation) | null {
  try {
    const require = createRequire(import.meta.url);
    const generated = require('./pipeline-validator.generated.cjs') as ValidateFunction & {
      schemaHash?: string;
    };
    const text = readFileSync(PIPELINE_SCHEMA_URL, 'utf8');
    if (generated.schemaHash !== createHash('sha256').update(text).digest('hex')) return null;
    return (source) => runValidation(generated, source);
  } catch {
    return null;
  }
}

/** A validator for a given pipeline schema (e.g. one merged with handler argument schemas). */
export function createPipelineValidator(schema: JsonSchema): (source: SourceDocument) => SchemaValidation {
  // allowUnionTypes: durations, hooks, schedules and depends_on are `type: [a, b]` rather than
  // oneOf, which gives one clear error instead of one per branch. Strict otherwise.
  const ajv = new Ajv2020({ strict: true, allErrors: true, verbose: true, allowUnionTypes: true });
  const validate = ajv.compile(schema);
  return (source) => runValidation(validate, source);
}

function runValidation(validate: ValidateFunction, source: SourceDocument): SchemaValidation {
  if (source.value === undefined) return { spec: null, diagnostics: [] };
  const diagnostics: Diagnostic[] = [];
  if (!validate(source.value)) {
    for (const error of collapseErrors(validate.errors ?? [])) {
      diagnostics.push(toDiagnostic(error, source));
    }
  }
  diagnostics.push(...reservedTaskNames(source));
  const unique = dedupe(diagnostics).sort((a, b) => a.line - b.line || a.column - b.column);
  const failed = unique.some((d) => d.severity === 'error');
  return { spec: failed ? null : (source.value as PipelineSpec), diagnostics: unique };
}

function reservedTaskNames(source: SourceDocument): Diagnostic[] {
  const value = source.value as { tasks?: unknown } | null;
  const tasks = typeof value === 'object' && value !== null ? value.tasks : undefined;
  if (typeof tasks !== 'object' || tasks === null || Array.isArray(tasks)) return [];
  return Object.keys(tasks)
    .filter((name) => RESERVED_TASK_NAMES.includes(name))
    .map((name) =>
      source.diagnosticAt(
        ['tasks', name],
        {
          code: 'TASK_NAME_RESERVED',
          message: `task name "${name}" is reserved (it has a special meaning for JavaScript objects)`,
          hint: 'choose another name for this task',
        },
        { key: true },
      ),
    );
}

function dedupe(diagnostics: Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  return diagnostics.filter((d) => {
    const key = `${d.code}|${d.line}|${d.column}|${d.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

// ---------------------------------------------------------------------------------------------
// Collapsing ajv's noise

/**
 * ajv reports, for a failed oneOf/anyOf, every branch's failure plus the combinator's own error,
 * and for if/then an extra "must match then schema". Keep only what helps: for a combinator, the
 * errors of the branch that fits the value's type (or one type error when none does).
 */
export function collapseErrors(errors: readonly ErrorObject[]): ErrorObject[] {
  let list = errors.filter((e) => e.keyword !== 'if' && e.keyword !== 'propertyNames');
  // A combinator that matched several branches has nothing to collapse and stays as it is.
  const kept = new Set<ErrorObject>();
  for (;;) {
    const index = list.findIndex((e) => (e.keyword === 'oneOf' || e.keyword === 'anyOf') && !kept.has(e));
    if (index === -1) return list;
    // ajv pushes a combinator's error right after its branches' errors, so the run of errors just
    // before it that sit inside its value and do not come from a sibling keyword are its branches'.
    const outer = list[index]!;
    const parentPath = outer.schemaPath.slice(0, outer.schemaPath.lastIndexOf('/'));
    let start = index;
    while (start > 0) {
      const previous = list[start - 1]!;
      if (!isInsideInstance(previous.instancePath, outer.instancePath)) break;
      // A sibling keyword of the combinator in the same schema object; paths into $defs are
      // the targets of a $ref inside a branch (ajv restarts schemaPath at a ref's target).
      const next = previous.schemaPath.slice(parentPath.length + 1).split('/')[0];
      const fromSibling =
        previous.schemaPath.startsWith(parentPath + '/') &&
        !previous.schemaPath.startsWith(outer.schemaPath + '/') &&
        next !== '$defs' &&
        next !== 'definitions';
      if (fromSibling) break;
      start -= 1;
    }
    const branchErrors = list.slice(start, index);
    const picked = pickBranch(outer, branchErrors);
    if (picked.includes(outer)) kept.add(outer);
    list = [...list.slice(0, start), ...picked, ...list.slice(index + 1)];
  }
}

function isInsideInstance(path: string, parent: string): boolean {
  return path === parent || path.startsWith(parent + '/');
}

function pickBranch(outer: ErrorObject, branchErrors: ErrorObject[]): ErrorObject[] {
  const branches = (outer.parentSchema?.[outer.keyword] as unknown[] | undefined) ?? [];
  const byBranch = new Map<number, ErrorObject[]>();
  branches.forEach((branch, i) => {
    const prefix = `${outer.schemaPath}/${i}/`;
    const ref =
      typeof branch === 'object' && branch !== null ? (branch as { $ref?: unknown }).$ref : undefined;
    const refPrefix = typeof ref === 'string' ? `${ref}/` : undefined;
    byBranch.set(
      i,
      branchErrors.filter(
        (e) =>
          e.schemaPath.startsWith(prefix) || (refPrefix !== undefined && e.schemaPath.startsWith(refPrefix)),
      ),
    );
  });
  if (branchErrors.length === 0) return [outer];
  const typeMismatch = (errors: ErrorObject[]) =>
    errors.some((e) => e.keyword === 'type' && e.instancePath === outer.instancePath);
  const applicable = [...byBranch.values()].filter((errors) => errors.length > 0 && !typeMismatch(errors));
  if (applicable.length > 0) {
    return applicable.reduce((best, errors) => (errors.length < best.length ? errors : best));
  }
  const types = new Set<string>();
  for (const errors of byBranch.values()) {
    for (const e of errors) {
      if (e.keyword !== 'type' || e.instancePath !== outer.instancePath) continue;
      const declared = (e.params as { type?: string | string[] }).type;
      for (const type of Array.isArray(declared) ? declared : [declared ?? '']) if (type) types.add(type);
    }
  }
  if (types.size === 0) return [outer];
  return [
    { ...outer, keyword: 'type', params: { type: [...types] }, message: `must be ${[...types].join(',')}` },
  ];
}

// ---------------------------------------------------------------------------------------------
// Messages

function toDiagnostic(error: ErrorObject, source: SourceDocument): Diagnostic {
  const path = toDocPath(error.instancePath, source.value);
  const where = describePath(path);
  const params = error.params as Record<string, unknown>;
  const data: unknown = error.data;
  const at = (
    target: DocPath,
    code: DiagnosticCode,
    message: string,
    hint?: string,
    key = false,
  ): Diagnostic =>
    source.diagnosticAt(target, hint === undefined ? { code, message } : { code, message, hint }, { key });

  switch (error.keyword) {
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const allowed = Object.keys((error.parentSchema?.properties as object | undefined) ?? {});
      const guess = suggest(key, allowed);
      const message = `${where.ownerPrefix}unknown key \`${key}\`${where.field ? ` in \`${where.field}\`` : ''}`;
      const hint = guess
        ? `did you mean \`${guess}\`?`
        : allowed.length > 0
          ? `allowed keys: ${allowed.join(', ')}`
          : undefined;
      return at([...path, key], 'SCHEMA_UNKNOWN_KEY', message, hint, true);
    }
    case 'required': {
      const missing = String(params.missingProperty);
      const message =
        where.field || where.owner
          ? `${where.lead} is missing required key \`${missing}\``
          : `missing required key \`${missing}\``;
      return at(path, 'SCHEMA_MISSING_KEY', message, undefined, path.length > 0);
    }
    case 'type': {
      const declared = params.type;
      const types = Array.isArray(declared) ? declared.map(String) : [String(declared)];
      if (path.length === 0) {
        return at(
          path,
          'SCHEMA_TYPE',
          `the pipeline must be a mapping with keys such as \`name\` and \`tasks\`, got ${describeValue(data)}`,
        );
      }
      const hint =
        path.length === 2 && path[0] === 'tasks' && data === null
          ? `write \`${String(path[1])}: {}\` for a task with no settings`
          : undefined;
      return at(
        path,
        'SCHEMA_TYPE',
        `${where.lead} must be ${typeWords(types)}, got ${describeValue(data)}`,
        hint,
      );
    }
    case 'enum':
    case 'const': {
      const allowed =
        error.keyword === 'enum'
          ? ((params.allowedValues as unknown[] | undefined) ?? [])
          : [params.allowedValue];
      const list = allowed.map((v) => `\`${typeof v === 'string' ? v : JSON.stringify(v)}\``).join(', ');
      const guess =
        typeof data === 'string'
          ? suggest(
              data,
              allowed.filter((v): v is string => typeof v === 'string'),
            )
          : undefined;
      const message =
        allowed.length === 1
          ? `${where.lead} must be ${list}, got ${describeValue(data)}`
          : `${where.lead} must be one of ${list}, got ${describeValue(data)}`;
      return at(path, 'SCHEMA_ENUM', message, guess ? `did you mean \`${guess}\`?` : undefined);
    }
    case 'pattern':
      return patternDiagnostic(error, path, where, at);
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum': {
      const words = {
        minimum: 'at least',
        maximum: 'at most',
        exclusiveMinimum: 'more than',
        exclusiveMaximum: 'less than',
      };
      return at(
        path,
        'SCHEMA_RANGE',
        `${where.lead} must be ${words[error.keyword]} ${String(params.limit)}, got ${describeValue(data)}`,
      );
    }
    case 'minProperties':
      if (path.length === 1 && path[0] === 'tasks')
        return at(path, 'SCHEMA_RANGE', '`tasks` must define at least one task', undefined, true);
      return at(
        path,
        'SCHEMA_RANGE',
        `${where.lead} must have at least ${String(params.limit)} key(s)`,
        undefined,
        true,
      );
    case 'minItems':
      return at(path, 'SCHEMA_RANGE', `${where.lead} must have at least ${String(params.limit)} item(s)`);
    case 'minLength':
      return at(path, 'SCHEMA_RANGE', `${where.lead} must not be empty`);
    case 'maxItems':
    case 'maxLength':
    case 'maxProperties':
      return at(path, 'SCHEMA_RANGE', `${where.lead} ${error.message ?? 'is too long'}`);
    case 'uniqueItems': {
      const i = Number(params.i);
      const j = Number(params.j);
      const item = Array.isArray(data) ? (data as unknown[])[Math.max(i, j)] : undefined;
      return at(
        [...path, Math.max(i, j)],
        'SCHEMA_INVALID',
        `${where.lead} lists ${describeItem(item)} more than once`,
      );
    }
    case 'oneOf':
    case 'anyOf':
      return at(path, 'SCHEMA_INVALID', `${where.lead} does not match exactly one of the allowed forms`);
    default:
      return at(path, 'SCHEMA_INVALID', `${where.lead} ${error.message ?? 'is not valid'}`);
  }
}

type At = (
  target: DocPath,
  code: DiagnosticCode,
  message: string,
  hint?: string,
  key?: boolean,
) => Diagnostic;

function patternDiagnostic(error: ErrorObject, path: DocPath, where: PathWords, at: At): Diagnostic {
  const data: unknown = error.data;
  const pattern = String((error.params as { pattern?: unknown }).pattern);
  if (error.propertyName !== undefined) {
    // A key that breaks a `propertyNames` rule: task and param names.
    const name = error.propertyName;
    const kind =
      path.length === 1 && path[0] === 'tasks'
        ? 'task'
        : path.length === 1 && path[0] === 'params'
          ? 'param'
          : 'key';
    const fixed = slug(name, /[^A-Za-z0-9_-]+/g, '_');
    return at(
      [...path, name],
      'SCHEMA_PATTERN',
      `${kind} name "${name}" is not allowed: use letters, digits, \`_\` and \`-\`, starting with a letter or \`_\``,
      fixed && fixed !== name && /^[A-Za-z_]/.test(fixed) ? `try "${fixed}"` : undefined,
      true,
    );
  }
  if (error.schemaPath.startsWith('#/$defs/duration/')) {
    return at(
      path,
      'DURATION_INVALID',
      `${where.lead} is not a duration: ${describeItem(data)}`,
      DURATION_HINT,
    );
  }
  if (path.length === 1 && path[0] === 'name') {
    const fixed = slug(String(data).toLowerCase(), /[^a-z0-9]+/g, '-');
    return at(
      path,
      'SCHEMA_PATTERN',
      `pipeline name ${describeItem(data)} is not allowed: use lowercase letters and digits, words joined by single \`-\` or \`_\`, starting with a letter`,
      /^[a-z]/.test(fixed) ? `try "${fixed}"` : 'e.g. "nightly-etl"',
    );
  }
  if (path[0] === 'secrets') {
    return at(
      path,
      'SCHEMA_PATTERN',
      `${where.lead} must be an environment variable name (letters, digits and \`_\`, not starting with a digit), got ${describeItem(data)}`,
    );
  }
  return at(path, 'SCHEMA_PATTERN', `${where.lead} must match /${pattern}/, got ${describeItem(data)}`);
}

function slug(text: string, bad: RegExp, joiner: string): string {
  return text
    .trim()
    .replace(bad, joiner)
    .replace(new RegExp(`^[${joiner}]+|[${joiner}]+$`, 'g'), '');
}

/** ajv's instancePath as a DocPath: array indices become numbers, following the data. */
function toDocPath(instancePath: string, value: unknown): DocPath {
  if (instancePath === '') return [];
  const path: (string | number)[] = [];
  let current: unknown = value;
  for (const raw of instancePath.slice(1).split('/')) {
    const segment = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    if (Array.isArray(current)) {
      const index = Number(segment);
      path.push(index);
      current = (current as unknown[])[index];
    } else {
      path.push(segment);
      current =
        typeof current === 'object' && current !== null
          ? (current as Record<string, unknown>)[segment]
          : undefined;
    }
  }
  return path;
}

interface PathWords {
  /** `task "extract"`, `param "env"`, or '' for the pipeline's own keys. */
  owner: string;
  /** `task "extract": ` or ''. */
  ownerPrefix: string;
  /** The field inside the task/param/pipeline, as `on_failure[0].handler`; '' for the whole. */
  field: string;
  /** The sentence's start: owner + `field`, or the owner, or "the pipeline". */
  lead: string;
}

function describePath(path: DocPath): PathWords {
  let owner = '';
  let rest = path;
  if (path.length >= 2 && (path[0] === 'tasks' || path[0] === 'params')) {
    owner = `${path[0] === 'tasks' ? 'task' : 'param'} "${String(path[1])}"`;
    rest = path.slice(2);
  }
  const field = rest.map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? s : `.${s}`)).join('');
  const ownerPrefix = owner ? `${owner}: ` : '';
  const lead = field ? `${ownerPrefix}\`${field}\`` : owner || 'the pipeline';
  return { owner, ownerPrefix, field, lead };
}

const TYPE_WORDS: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'a boolean (true or false)',
  object: 'a mapping',
  array: 'a list',
  null: 'null',
};

function typeWords(types: readonly string[]): string {
  const words = types.map((t) => TYPE_WORDS[t] ?? t);
  return words.length <= 1
    ? (words[0] ?? 'valid')
    : `${words.slice(0, -1).join(', ')} or ${words[words.length - 1]!}`;
}

function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'nothing (null)';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string') return `string ${describeItem(value)}`;
  if (typeof value === 'number') return `number ${String(value)}`;
  if (typeof value === 'boolean') return `boolean ${String(value)}`;
  if (typeof value === 'object') return 'a mapping';
  return typeof value;
}

function describeItem(value: unknown): string {
  if (typeof value === 'string')
    return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (typeof value === 'object' && value !== null) return Array.isArray(value) ? 'a list' : 'a mapping';
  return String(value);
}
