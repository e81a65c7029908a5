import type { ErrorObject } from 'ajv/dist/2020.js';
import type { Diagnostic, DiagnosticCode, DocPath } from '../errors.js';
import type { SourceDocument } from './source.js';
import { suggest } from './suggest.js';

const DURATION_HINT =
  'write a number with a unit — "250ms", "30s", "5m", "1h30m", "2d" (units combine without spaces) — or a number of seconds';

/** One of ajv's errors in plain words, at the place in the YAML it is about. */
export function toDiagnostic(error: ErrorObject, source: SourceDocument): Diagnostic {
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
