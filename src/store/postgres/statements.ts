import type pg from 'pg';
import {
  attemptExistsError,
  missingRunError,
  noSuchTaskError,
  runExistsError,
  runRequestExistsError,
  scheduleTakenError,
} from '../store-errors.js';
import { type GroupExecutor, type Outcome, type PartBuilder, prepared } from './write-batch.js';

/**
 * The SQL of the PostgreSQL store's writes, each as a multi-row statement over `unnest` of one
 * array per column, so that the writes of a batch that have the same shape cost one round trip.
 * Every statement is written so that the conditions a caller may meet (a fence that does not hold,
 * a duplicate, a missing run) are results, never errors: an error would abort the transaction that
 * holds the other writes of the batch.
 */

export type SqlType = 'text' | 'integer' | 'bigint' | 'boolean' | 'json' | 'timestamptz' | 'bytea';
export type SqlValue = string | number | boolean | Buffer | null;

export interface Column {
  column: string;
  type: SqlType;
}

/** How a port value is sent for a column of this type. */
export function encodeValue(type: SqlType, value: unknown): SqlValue {
  if (value === null || value === undefined) return null;
  switch (type) {
    case 'json':
      return JSON.stringify(value);
    case 'text':
      // PostgreSQL text cannot hold NUL, and one such value would abort the whole batch.
      return typeof value === 'string' && value.includes('\u0000')
        ? value.replaceAll('\u0000', '\uFFFD')
        : (value as SqlValue);
    case 'bytea':
      return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value), 'utf8');
    case 'integer':
    case 'bigint':
    case 'boolean':
    case 'timestamptz':
      return value as SqlValue;
  }
}

/** Rows -> one array per column, for `unnest($1::type[], $2::type[], …)`. */
function columnsOf(rows: readonly (readonly SqlValue[])[], width: number): SqlValue[][] {
  const columns: SqlValue[][] = Array.from({ length: width }, () => new Array<SqlValue>(rows.length));
  rows.forEach((row, r) => {
    for (let c = 0; c < width; c++) columns[c]![r] = row[c]!;
  });
  return columns;
}

/** `unnest($b+1::t1[], …) WITH ORDINALITY AS u(names…, ord)`, parameters numbered after `base`. */
function unnestOf(types: readonly SqlType[], names: readonly string[], base: number): string {
  const args = types.map((type, i) => `$${base + i + 1}::${type}[]`).join(', ');
  return `unnest(${args}) WITH ORDINALITY AS u(${names.join(', ')}, ord)`;
}

const ok = (value: unknown): Outcome => ({ ok: true, value });
const failed = (error: Error): Outcome => ({ ok: false, error });

function selectRows(g: number, ord: string, a: string, b: string, from: string): string {
  return `SELECT ${g}::integer AS g, (${ord})::bigint AS ord, (${a})::boolean AS a, (${b})::boolean AS b FROM ${from}`;
}

// ---- fenced updates -----------------------------------------------------------------------------

export type ConditionKind = 'states' | 'attempts' | 'owner';

const CONDITION_SQL: Record<ConditionKind, { type: SqlType; where: string }> = {
  // States travel as one comma-separated text per row (a state name never holds a comma); an empty
  // list matches nothing, as the port says.
  states: { type: 'text', where: "t.state = ANY (string_to_array(u.c_states, ','))" },
  attempts: { type: 'integer', where: 't.attempts = u.c_attempts' },
  // A condition of null matches an unowned run only.
  owner: { type: 'text', where: 't.owner IS NOT DISTINCT FROM u.c_owner' },
};

export interface UpdateShape {
  table: string;
  keys: readonly Column[];
  set: readonly Column[];
  conditions: readonly ConditionKind[];
}

/**
 * `UPDATE table t SET … FROM unnest(…) u WHERE <key> AND <conditions> RETURNING u.ord`: a fenced
 * update of many rows in one statement, the condition in the WHERE, so it holds against writes of
 * other processes too. Each payload is one row: key values, then set values, then condition values.
 */
export function updatePart(shape: UpdateShape): PartBuilder {
  const types = [
    ...shape.keys.map((k) => k.type),
    ...shape.set.map((s) => s.type),
    ...shape.conditions.map((c) => CONDITION_SQL[c].type),
  ];
  const names = [
    ...shape.keys.map((k) => `k_${k.column}`),
    ...shape.set.map((s) => `p_${s.column}`),
    ...shape.conditions.map((c) => `c_${c}`),
  ];
  // An empty patch still checks the condition: "does it hold?" is a fair question to ask.
  const set =
    shape.set.length > 0
      ? shape.set.map((s) => `${s.column} = u.p_${s.column}`).join(', ')
      : `${shape.keys[0]!.column} = t.${shape.keys[0]!.column}`;
  const where = [
    ...shape.keys.map((k) => `t.${k.column} = u.k_${k.column}`),
    ...shape.conditions.map((c) => CONDITION_SQL[c].where),
  ].join(' AND ');
  return (payloads, base, p, g) => {
    const rows = payloads as readonly (readonly SqlValue[])[];
    return {
      ctes: [
        `${p}upd AS (UPDATE ${shape.table} AS t SET ${set} FROM ${unnestOf(types, names, base)} WHERE ${where} RETURNING u.ord)`,
      ],
      select: selectRows(g, 'ord', 'NULL', 'NULL', `${p}upd`),
      values: columnsOf(rows, types.length),
      finish: (result) => {
        const matched = new Set(result.map((row) => row.ord));
        return rows.map((_, i) => ok(matched.has(i + 1)));
      },
    };
  };
}

// ---- attempts -----------------------------------------------------------------------------------

const ATTEMPT_INSERT_TYPES: readonly SqlType[] = [
  'text',
  'text',
  'integer',
  'text',
  'bigint',
  'timestamptz',
  'timestamptz',
  'json',
  'text',
  'integer',
];
const ATTEMPT_FIELDS = 'run_id, task, attempt, state, delay_ms, started_at, finished_at, error, worker, pid';

/**
 * One payload per attempt: the values of ATTEMPT_FIELDS, in order. Neither a duplicate nor a task
 * the run does not have is an error here (it would abort the batch): each is reported per row.
 */
export const insertAttemptsPart: PartBuilder = (payloads, base, p, g) => {
  const rows = payloads as readonly (readonly SqlValue[])[];
  return {
    ctes: [
      `${p}u AS MATERIALIZED (SELECT * FROM ${unnestOf(ATTEMPT_INSERT_TYPES, ATTEMPT_FIELDS.split(', '), base)})`,
      `${p}ins AS (
  INSERT INTO attempts (${ATTEMPT_FIELDS})
  SELECT ${ATTEMPT_FIELDS} FROM ${p}u u
  WHERE EXISTS (SELECT 1 FROM task_runs t WHERE t.run_id = u.run_id AND t.task = u.task)
  ORDER BY u.ord
  ON CONFLICT DO NOTHING
  RETURNING run_id, task, attempt
)`,
    ],
    select: selectRows(
      g,
      'u.ord',
      'i.run_id IS NOT NULL',
      'EXISTS (SELECT 1 FROM task_runs t WHERE t.run_id = u.run_id AND t.task = u.task)',
      `${p}u u LEFT JOIN ${p}ins i ON i.run_id = u.run_id AND i.task = u.task AND i.attempt = u.attempt`,
    ),
    values: columnsOf(rows, ATTEMPT_INSERT_TYPES.length),
    finish: (result) => {
      const outcomes = rows.map(() => ok(undefined));
      for (const row of result) {
        if (row.a) continue;
        const [runId, task, attempt] = rows[row.ord - 1]!;
        outcomes[row.ord - 1] = failed(
          row.b
            ? attemptExistsError(String(runId), String(task), String(attempt))
            : noSuchTaskError(String(runId), String(task)),
        );
      }
      return outcomes;
    },
  };
};

// ---- logs and hooks: many rows per write, all or none -------------------------------------------

/**
 * A write of several rows that all need their run: rows carry the index of their write (`op`);
 * a write with a row whose run does not exist inserts nothing and is reported back.
 */
function rowsPart(
  table: string,
  types: readonly SqlType[],
  fields: readonly string[],
  tail: string,
  missing: (payload: unknown) => Error,
): PartBuilder {
  return (payloads, base, p, g) => {
    const rows: SqlValue[][] = [];
    (payloads as readonly (readonly (readonly SqlValue[])[])[]).forEach((lines, op) => {
      for (const line of lines) rows.push([op, ...line]);
    });
    return {
      ctes: [
        `${p}u AS MATERIALIZED (SELECT * FROM ${unnestOf(['integer', ...types], ['op', ...fields], base)})`,
        `${p}bad AS (SELECT DISTINCT u.op FROM ${p}u u WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = u.run_id))`,
        `${p}ins AS (
  INSERT INTO ${table} (${fields.join(', ')})
  SELECT ${fields.join(', ')} FROM ${p}u u WHERE u.op NOT IN (SELECT op FROM ${p}bad) ORDER BY u.ord ${tail}
)`,
      ],
      select: selectRows(g, 'op', 'NULL', 'NULL', `${p}bad`),
      values: columnsOf(rows, fields.length + 1),
      finish: (result) => {
        const bad = new Set(result.map((row) => row.ord));
        return payloads.map((payload, op) => (bad.has(op) ? failed(missing(payload)) : ok(undefined)));
      },
    };
  };
}

const LOG_TYPES: readonly SqlType[] = ['text', 'text', 'integer', 'timestamptz', 'text', 'bytea'];
const LOG_FIELDS = ['run_id', 'task', 'attempt', 'ts', 'level', 'message'];

/**
 * One payload per appendLogs call: its lines, each the values of LOG_FIELDS. ORDER BY: a sequence
 * value is drawn per row as rows arrive, so lines get seqs in issue order.
 */
export const insertLogsPart: PartBuilder = rowsPart('logs', LOG_TYPES, LOG_FIELDS, '', (payload) =>
  missingRun(payload, 'append logs'),
);

const HOOK_TYPES: readonly SqlType[] = [
  'text',
  'text',
  'text',
  'text',
  'text',
  'text',
  'json',
  'timestamptz',
  'timestamptz',
];
const HOOK_FIELDS = [
  'run_id',
  'key',
  'event',
  'task',
  'handler',
  'state',
  'error',
  'created_at',
  'finished_at',
];

/** One payload per addHooks call: its hooks. A hook whose (run, key) exists is left as it is. */
export const insertHooksPart: PartBuilder = rowsPart(
  'hooks',
  HOOK_TYPES,
  HOOK_FIELDS,
  'ON CONFLICT DO NOTHING',
  (payload) => missingRun(payload, 'add hooks'),
);

function missingRun(payload: unknown, what: string): Error {
  const rows = payload as readonly (readonly SqlValue[])[];
  return missingRunError(String(rows[0]?.[0]), what);
}

// ---- runs ---------------------------------------------------------------------------------------

const RUN_INSERT = `r AS (
  INSERT INTO runs (id, pipeline, state, params, plan_hash, trigger, scheduled_for, owner, created_at)
  VALUES ($2, $3, $4, $5::json, $1, $6, $7::timestamptz, $8, $9::timestamptz)
  ON CONFLICT DO NOTHING
  RETURNING id
),
t AS (
  INSERT INTO task_runs (run_id, task, ordinal, state)
  SELECT r.id, u.task, u.ord - 1, 'pending' FROM r, unnest($10::text[]) WITH ORDINALITY AS u(task, ord)
)
SELECT count(*)::integer AS created FROM r`;

/**
 * One statement: the plan (unless known to be stored), the run, and its task runs with ONE insert
 * over unnest, however many tasks the plan has. ON CONFLICT DO NOTHING covers both the run id and
 * the (pipeline, scheduled_for) index; which one refused it is asked only when one did.
 * $11, only in the first form, is the plan's JSON text.
 */
const CREATE_RUN_WITH_PLAN = `WITH p AS (INSERT INTO plans (hash, plan) VALUES ($1, $11::json) ON CONFLICT DO NOTHING),
${RUN_INSERT}`;
const CREATE_RUN = `WITH ${RUN_INSERT}`;
const DUPLICATE_OF = `SELECT
  (SELECT id FROM runs WHERE id = $1) AS same_id,
  (SELECT id FROM runs WHERE pipeline = $2 AND scheduled_for = $3::timestamptz) AS same_slot`;

export interface CreateRunPayload {
  planHash: string;
  /** Null when the plan is known to be stored already. */
  planText: string | null;
  id: string;
  pipeline: string;
  state: string;
  paramsText: string;
  trigger: string;
  scheduledFor: string | null;
  owner: string | null;
  createdAt: string;
  order: readonly string[];
}

export const createRunExecutor: GroupExecutor = async (client, payloads) => {
  const outcomes: Outcome[] = [];
  for (const payload of payloads as readonly CreateRunPayload[]) {
    const { planText } = payload;
    const values: unknown[] = [
      payload.planHash,
      payload.id,
      payload.pipeline,
      payload.state,
      payload.paramsText,
      payload.trigger,
      payload.scheduledFor,
      encodeValue('text', payload.owner),
      payload.createdAt,
      payload.order,
    ];
    const result =
      planText === null
        ? await client.query<{ created: number }>(prepared(CREATE_RUN, values))
        : await client.query<{ created: number }>(prepared(CREATE_RUN_WITH_PLAN, [...values, planText]));
    if (result.rows[0]?.created === 1) {
      outcomes.push(ok(true));
      continue;
    }
    const dup = await client.query<{ same_id: string | null; same_slot: string | null }>(
      prepared(DUPLICATE_OF, [payload.id, payload.pipeline, payload.scheduledFor]),
    );
    const row = dup.rows[0];
    outcomes.push(
      failed(
        row?.same_id || !row?.same_slot
          ? runExistsError(payload.id)
          : scheduleTakenError(payload.pipeline, payload.scheduledFor, row.same_slot),
      ),
    );
  }
  return outcomes;
};

// ---- fires and run requests: rare, so one statement per write ----------------------------------

/** Runs each write of a group with statements of its own, in order. */
function eachExecutor<P>(run: (client: pg.PoolClient, payload: P) => Promise<Outcome>): GroupExecutor {
  return async (client, payloads) => {
    const outcomes: Outcome[] = [];
    for (const payload of payloads as readonly P[]) outcomes.push(await run(client, payload));
    return outcomes;
  };
}

const insertFires = eachExecutor<readonly SqlValue[]>(async (client, values) => {
  const result = await client.query(
    prepared(
      `INSERT INTO fires (pipeline, scheduled_for, outcome, reason, run_id, recorded_at)
       VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (pipeline, scheduled_for) DO NOTHING RETURNING 1`,
      values,
    ),
  );
  return ok((result.rowCount ?? 0) > 0);
});

/**
 * [pipeline, scheduledFor, outcome, reason, runId, recordedAt]. IMPORTANT: inserted in (pipeline,
 * scheduledFor) order. Schedulers on one store insert the same fires of a tick, several in one
 * transaction: in arrival order, two of them would each wait for a row the other inserted (a
 * deadlock, broken only after deadlock_timeout, a second by default, at every such tick).
 */
export const recordFireExecutor: GroupExecutor = async (client, payloads) => {
  const rows = payloads as readonly (readonly SqlValue[])[];
  const key = (i: number) => `${String(rows[i]![0])}\0${String(rows[i]![1])}`;
  const order = rows.map((_, i) => i).sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  const inserted = await insertFires(
    client,
    order.map((i) => rows[i]!),
  );
  const outcomes = new Array<Outcome>(rows.length);
  order.forEach((i, k) => (outcomes[i] = inserted[k]!));
  return outcomes;
};

/** [id, pipeline, paramsText, requestedAt]. */
export const requestRunExecutor: GroupExecutor = eachExecutor<readonly SqlValue[]>(async (client, values) => {
  const result = await client.query(
    prepared(
      `INSERT INTO run_requests (id, pipeline, params, state, requested_at)
       VALUES ($1, $2, $3::json, 'pending', $4) ON CONFLICT (id) DO NOTHING RETURNING 1`,
      values,
    ),
  );
  if ((result.rowCount ?? 0) > 0) return ok(undefined);
  return failed(runRequestExistsError(String(values[0])));
});

export const RUN_REQUEST_FIELDS =
  'id, pipeline, params, state, requested_at, claimed_by, claimed_at, run_id, error, completed_at';

/**
 * [owner, now, limit, staleBefore]: pending requests, and claimed ones whose claim is older than
 * staleBefore (null: none), each looked up through its partial index, oldest first. SKIP LOCKED:
 * a scheduler in another process claiming at the same moment takes other requests instead of
 * waiting for these, and never the same ones.
 */
export const claimRunRequestsExecutor: GroupExecutor = eachExecutor<readonly SqlValue[]>(
  async (client, values) => {
    const result = await client.query(
      prepared(
        `WITH pending AS (
         SELECT id, requested_at FROM run_requests WHERE state = 'pending'
         ORDER BY requested_at, id LIMIT $3 FOR UPDATE SKIP LOCKED
       ), stale AS (
         SELECT id, requested_at FROM run_requests WHERE state = 'claimed' AND claimed_at < $4::timestamptz
         ORDER BY claimed_at LIMIT $3 FOR UPDATE SKIP LOCKED
       )
       UPDATE run_requests SET state = 'claimed', claimed_by = $1, claimed_at = $2
       WHERE id IN (
         SELECT id FROM (SELECT * FROM pending UNION ALL SELECT * FROM stale) candidates
         ORDER BY requested_at, id LIMIT $3
       )
       RETURNING ${RUN_REQUEST_FIELDS}`,
        values,
      ),
    );
    return ok(result.rows);
  },
);

/** [state, runId, error, completedAt, id]. */
export const completeRunRequestExecutor: GroupExecutor = eachExecutor<readonly SqlValue[]>(
  async (client, values) => {
    const result = await client.query(
      prepared(
        `UPDATE run_requests SET state = $1, run_id = $2, error = $3::json, completed_at = $4
         WHERE id = $5 AND state = 'claimed' RETURNING 1`,
        values,
      ),
    );
    return ok((result.rowCount ?? 0) > 0);
  },
);
