import type { Plan } from '../../compile/plan.js';
import { WeftError } from '../../errors.js';
import type { ErrorInfo } from '../../errors.js';
import type {
  AttemptCondition,
  FireQuery,
  FireRecord,
  NewRunRequest,
  RunRequestRecord,
  AttemptPatch,
  AttemptRecord,
  HookPatch,
  HookRecord,
  HookState,
  LogQuery,
  LogRecord,
  NewRun,
  PruneQuery,
  PruneReport,
  RunCondition,
  RunPatch,
  RunQuery,
  RunRecord,
  RunStore,
  TaskRunCondition,
  TaskRunPatch,
  TaskRunRecord,
} from '../run-store.js';
import { PRUNABLE_RUN_STATES } from '../run-store.js';
import { pruneCutoff } from '../prune-sql.js';
import { cloneJson, hashPlanText, parsePlan, toDict } from '../json-codec.js';
import {
  ATTEMPT_PATCH_FIELDS,
  HOOK_PATCH_FIELDS,
  type PatchField,
  patchEntries,
  RUN_PATCH_FIELDS,
  TASK_RUN_PATCH_FIELDS,
} from '../patches.js';
import {
  compareRunRequests,
  compareText,
  completedRequestState,
  DEFAULT_LIMIT,
  newRunRecord,
  pendingRunRequest,
  pendingTaskRun,
} from '../records.js';
import {
  attemptExistsError,
  missingRunError,
  noSuchTaskError,
  runExistsError,
  runRequestExistsError,
  scheduleTakenError,
} from '../store-errors.js';

/**
 * The RunStore in memory: for tests and benchmarks, and `--store :memory:`. Same behaviour as the
 * SQL adapters (the conformance suite holds them to it), nothing survives the process.
 *
 * Records are copied in and out, so mutating an argument or a returned record never changes the
 * store. Plans are the exception that proves the rule: a run's plan is stored once, deep-frozen,
 * and the same frozen object is returned every time (a 10,000-task plan is too big to copy per read).
 */

interface RunEntry {
  record: RunRecord;
  /** Task name -> its task run, in plan order. */
  tasks: Map<string, TaskRunRecord>;
  ordinals: Map<string, number>;
  attempts: Map<string, AttemptRecord>;
  logs: LogRecord[];
  hooks: Map<string, HookRecord>;
}

function attemptKey(task: string, attempt: number): string {
  return `${attempt}\u0000${task}`;
}

function copyRun(record: RunRecord): RunRecord {
  // The plan is frozen and shared on purpose (see above).
  return { ...record, params: toDict(cloneJson(record.params)), error: cloneJson(record.error) };
}

function copyTaskRun(record: TaskRunRecord): TaskRunRecord {
  return { ...record, output: cloneJson(record.output), error: cloneJson(record.error) };
}

function copyAttempt(record: AttemptRecord): AttemptRecord {
  return { ...record, error: cloneJson(record.error) };
}

function copyRequest(record: RunRequestRecord): RunRequestRecord {
  return { ...record, params: toDict(cloneJson(record.params)), error: cloneJson(record.error) };
}

function copyHook(record: HookRecord): HookRecord {
  return { ...record, error: cloneJson(record.error) };
}

/**
 * Applies the allowed keys present in the patch (copied, as a SQL adapter would store them); a
 * key set to undefined is treated as absent.
 */
function applyPatch<T extends object>(
  target: T,
  patch: object,
  fields: Readonly<Record<string, PatchField>>,
): void {
  for (const { key, value } of patchEntries(fields, patch)) {
    (target as Record<string, unknown>)[key] = cloneJson(value);
  }
}

export function createMemoryStore(): RunStore {
  const runs = new Map<string, RunEntry>();
  /** "pipeline\0scheduledFor" -> run id. */
  const schedules = new Map<string, string>();
  const plans = new Map<string, Plan>();
  /** "pipeline\0scheduledFor" -> fire. */
  const fires = new Map<string, FireRecord>();
  const requests = new Map<string, RunRequestRecord>();
  let seq = 0;
  let closed = false;

  function open(): void {
    if (closed) throw new WeftError('STORE_FAILED', 'the memory store is closed');
  }

  function entry(runId: string): RunEntry | undefined {
    return runs.get(runId);
  }

  function requireEntry(runId: string, what: string): RunEntry {
    const found = runs.get(runId);
    // `{}`: these refusals have always been retryable here, unlike in the SQL adapters.
    if (!found) throw missingRunError(runId, what, {});
    return found;
  }

  const sync: SyncStore = {
    createRun(run: NewRun): RunRecord {
      open();
      if (runs.has(run.id)) throw runExistsError(run.id);
      const scheduleKey = run.scheduledFor === null ? null : `${run.pipeline}\u0000${run.scheduledFor}`;
      const other = scheduleKey === null ? undefined : schedules.get(scheduleKey);
      if (other !== undefined) throw scheduleTakenError(run.pipeline, run.scheduledFor, other);
      const planText = JSON.stringify(run.plan);
      const planHash = hashPlanText(planText);
      let plan = plans.get(planHash);
      if (!plan) {
        plan = parsePlan(planText);
        plans.set(planHash, plan);
      }
      const record = newRunRecord(run, toDict(cloneJson(run.params)), plan, planHash);
      const tasks = new Map<string, TaskRunRecord>();
      const ordinals = new Map<string, number>();
      plan.order.forEach((task, ordinal) => {
        ordinals.set(task, ordinal);
        tasks.set(task, pendingTaskRun(run.id, task));
      });
      runs.set(run.id, { record, tasks, ordinals, attempts: new Map(), logs: [], hooks: new Map() });
      if (scheduleKey !== null) schedules.set(scheduleKey, run.id);
      return copyRun(record);
    },

    getRun(id: string): RunRecord | null {
      open();
      const found = entry(id);
      return found ? copyRun(found.record) : null;
    },

    listRuns(query: RunQuery = {}): RunRecord[] {
      open();
      const limit = query.limit ?? DEFAULT_LIMIT;
      const offset = query.offset ?? 0;
      const states = query.states ? new Set(query.states) : null;
      const matching: RunRecord[] = [];
      for (const { record } of runs.values()) {
        if (query.pipeline !== undefined && record.pipeline !== query.pipeline) continue;
        if (states && !states.has(record.state)) continue;
        matching.push(record);
      }
      matching.sort((a, b) => compareDesc(a.createdAt, b.createdAt) || compareDesc(a.id, b.id));
      return matching.slice(offset, offset + limit).map(copyRun);
    },

    updateRun(id: string, patch: RunPatch, condition: RunCondition = {}): boolean {
      open();
      const found = entry(id);
      if (!found) return false;
      const record = found.record;
      if (condition.states && !condition.states.includes(record.state)) return false;
      if (condition.owner !== undefined && record.owner !== condition.owner) return false;
      applyPatch(record, patch, RUN_PATCH_FIELDS);
      return true;
    },

    getTaskRuns(runId: string): TaskRunRecord[] {
      open();
      const found = entry(runId);
      return found ? [...found.tasks.values()].map(copyTaskRun) : [];
    },

    updateTaskRun(
      runId: string,
      task: string,
      patch: TaskRunPatch,
      condition: TaskRunCondition = {},
    ): boolean {
      open();
      const record = entry(runId)?.tasks.get(task);
      if (!record) return false;
      if (condition.states && !condition.states.includes(record.state)) return false;
      if (condition.attempts !== undefined && record.attempts !== condition.attempts) return false;
      applyPatch(record, patch, TASK_RUN_PATCH_FIELDS);
      return true;
    },

    insertAttempt(attempt: AttemptRecord): void {
      open();
      const found = requireEntry(
        attempt.runId,
        `insert attempt ${attempt.attempt} of task "${attempt.task}"`,
      );
      if (!found.tasks.has(attempt.task)) throw noSuchTaskError(attempt.runId, attempt.task, {});
      const key = attemptKey(attempt.task, attempt.attempt);
      if (found.attempts.has(key)) throw attemptExistsError(attempt.runId, attempt.task, attempt.attempt, {});
      found.attempts.set(key, copyAttempt(attempt));
    },

    updateAttempt(
      runId: string,
      task: string,
      attempt: number,
      patch: AttemptPatch,
      condition: AttemptCondition = {},
    ): boolean {
      open();
      const record = entry(runId)?.attempts.get(attemptKey(task, attempt));
      if (!record) return false;
      if (condition.states && !condition.states.includes(record.state)) return false;
      applyPatch(record, patch, ATTEMPT_PATCH_FIELDS);
      return true;
    },

    getAttempts(runId: string, task?: string): AttemptRecord[] {
      open();
      const found = entry(runId);
      if (!found) return [];
      const list = [...found.attempts.values()].filter((a) => task === undefined || a.task === task);
      // "By task" means in plan order, the order every adapter can agree on (no collation involved).
      list.sort((a, b) => found.ordinals.get(a.task)! - found.ordinals.get(b.task)! || a.attempt - b.attempt);
      return list.map(copyAttempt);
    },

    appendLogs(lines: readonly Omit<LogRecord, 'seq'>[]): void {
      open();
      // All or nothing, as in one transaction: check every line before storing any.
      const targets = lines.map((line) => requireEntry(line.runId, 'append logs'));
      lines.forEach((line, i) => {
        seq += 1;
        targets[i]!.logs.push({ ...line, seq });
      });
    },

    getLogs(runId: string, query: LogQuery = {}): LogRecord[] {
      open();
      const found = entry(runId);
      if (!found) return [];
      const logs = found.logs;
      const after = query.afterSeq;
      const start = after === undefined ? 0 : firstIndexAfter(logs, after);
      const out: LogRecord[] = [];
      const limit = query.limit ?? Infinity;
      for (let i = start; i < logs.length && out.length < limit; i++) {
        const line = logs[i]!;
        if (query.task !== undefined && line.task !== query.task) continue;
        out.push({ ...line });
      }
      return out;
    },

    addHooks(hooks: readonly HookRecord[]): void {
      open();
      const targets = hooks.map((hook) => requireEntry(hook.runId, `add hook "${hook.key}"`));
      hooks.forEach((hook, i) => {
        const target = targets[i]!;
        if (!target.hooks.has(hook.key)) target.hooks.set(hook.key, copyHook(hook));
      });
    },

    updateHook(runId: string, key: string, patch: HookPatch): boolean {
      open();
      const record = entry(runId)?.hooks.get(key);
      if (!record) return false;
      applyPatch(record, patch, HOOK_PATCH_FIELDS);
      return true;
    },

    getHooks(runId: string, states?: readonly HookState[]): HookRecord[] {
      open();
      const found = entry(runId);
      if (!found) return [];
      const list = [...found.hooks.values()].filter((h) => !states || states.includes(h.state));
      list.sort((a, b) => compareText(a.createdAt, b.createdAt) || compareText(a.key, b.key));
      return list.map(copyHook);
    },

    recordFire(fire: FireRecord): boolean {
      open();
      const key = `${fire.pipeline}\u0000${fire.scheduledFor}`;
      if (fires.has(key)) return false;
      fires.set(key, { ...fire });
      return true;
    },

    listFires(query: FireQuery = {}): FireRecord[] {
      open();
      const list = [...fires.values()].filter(
        (f) => query.pipeline === undefined || f.pipeline === query.pipeline,
      );
      list.sort((a, b) => compareDesc(a.scheduledFor, b.scheduledFor) || compareText(a.pipeline, b.pipeline));
      return list.slice(0, query.limit ?? DEFAULT_LIMIT).map((f) => ({ ...f }));
    },

    lastFire(pipeline: string): FireRecord | null {
      open();
      let last: FireRecord | null = null;
      for (const fire of fires.values()) {
        if (fire.pipeline === pipeline && (last === null || fire.scheduledFor > last.scheduledFor))
          last = fire;
      }
      return last ? { ...last } : null;
    },

    requestRun(request: NewRunRequest): RunRequestRecord {
      open();
      if (requests.has(request.id)) throw runRequestExistsError(request.id);
      const record = pendingRunRequest(request, toDict(cloneJson(request.params)));
      requests.set(request.id, record);
      return copyRequest(record);
    },

    claimRunRequests(limit: number, owner: string, now: string, staleBefore?: string): RunRequestRecord[] {
      open();
      const pending = [...requests.values()].filter(
        (r) =>
          r.state === 'pending' ||
          (r.state === 'claimed' &&
            staleBefore !== undefined &&
            r.claimedAt !== null &&
            Date.parse(r.claimedAt) < Date.parse(staleBefore)),
      );
      pending.sort(compareRunRequests);
      const claimed = pending.slice(0, Math.max(0, limit));
      for (const request of claimed) {
        request.state = 'claimed';
        request.claimedBy = owner;
        request.claimedAt = now;
      }
      return claimed.map(copyRequest);
    },

    completeRunRequest(
      id: string,
      runId: string | null,
      error: ErrorInfo | null,
      completedAt: string,
    ): boolean {
      open();
      const request = requests.get(id);
      if (!request || request.state !== 'claimed') return false;
      request.state = completedRequestState(runId, error);
      request.runId = runId;
      request.error = cloneJson(error);
      request.completedAt = completedAt;
      return true;
    },

    getRunRequest(id: string): RunRequestRecord | null {
      open();
      const request = requests.get(id);
      return request ? copyRequest(request) : null;
    },

    prune(query: PruneQuery): PruneReport {
      open();
      const before = pruneCutoff(query.before);
      // One batch here: stopped before it, nothing goes.
      if (query.signal?.aborted) return { runs: 0, fires: 0, runRequests: 0 };
      // The same rules as src/store/prune-sql.ts, in the same order: fires, then runs.
      const newest = new Map<string, string>();
      for (const fire of fires.values()) {
        if ((newest.get(fire.pipeline) ?? '') < fire.scheduledFor)
          newest.set(fire.pipeline, fire.scheduledFor);
      }
      const goneFires = [...fires].filter(
        ([, f]) =>
          f.scheduledFor < before &&
          f.scheduledFor < newest.get(f.pipeline)! &&
          !(f.runId !== null && !runs.has(f.runId)),
      );
      const goneFireKeys = new Set(goneFires.map(([key]) => key));
      const keptFireRuns = new Set(
        [...fires].filter(([key, f]) => !goneFireKeys.has(key) && f.runId !== null).map(([, f]) => f.runId),
      );
      // Per pipeline, in creation order: a failed or succeeded run goes only when a success
      // followed it with no unfinished run in between (see prunableRun in prune-sql.ts).
      const prunable: ReadonlySet<string> = new Set(PRUNABLE_RUN_STATES);
      const byPipeline = new Map<string, RunRecord[]>();
      for (const { record } of runs.values()) {
        const list = byPipeline.get(record.pipeline) ?? [];
        list.push(record);
        byPipeline.set(record.pipeline, list);
      }
      const streakFree = new Set<string>();
      for (const list of byPipeline.values()) {
        list.sort(compareRunOrder);
        // Walking back from the newest: a success seen with no run since that is unfinished or has
        // a hook pending frees what is older.
        let successAhead = false;
        for (let i = list.length - 1; i >= 0; i--) {
          const record = list[i]!;
          if (successAhead) streakFree.add(record.id);
          const hooks = runs.get(record.id)!.hooks.values();
          const open = !prunable.has(record.state) || [...hooks].some((h) => h.state === 'pending');
          if (open) successAhead = false;
          else if (record.state === 'succeeded') successAhead = true;
        }
      }
      const goneRuns = [...runs.values()].filter(
        ({ record, hooks }) =>
          prunable.has(record.state) &&
          record.finishedAt !== null &&
          record.finishedAt < before &&
          !keptFireRuns.has(record.id) &&
          (record.state === 'cancelled' || streakFree.has(record.id)) &&
          ![...hooks.values()].some((h) => h.state === 'pending'),
      );
      const goneRequests = [...requests.values()].filter(
        (r) =>
          (r.state === 'done' || r.state === 'failed') && r.completedAt !== null && r.completedAt < before,
      );
      if (!query.dryRun) {
        for (const [key] of goneFires) fires.delete(key);
        for (const { record } of goneRuns) {
          runs.delete(record.id);
          if (record.scheduledFor !== null)
            schedules.delete(`${record.pipeline}\u0000${record.scheduledFor}`);
        }
        for (const request of goneRequests) requests.delete(request.id);
      }
      return { runs: goneRuns.length, fires: goneFires.length, runRequests: goneRequests.length };
    },

    flush(): void {
      open();
    },

    close(): void {
      closed = true;
    },
  };
  return liftStore('memory', ':memory:', sync);
}

type SyncStore = {
  [K in Exclude<keyof RunStore, 'kind' | 'location'>]: RunStore[K] extends (
    ...args: infer A
  ) => Promise<infer R>
    ? (...args: A) => R
    : never;
};

/**
 * Wraps synchronous methods so that each returns a promise and a thrown WeftError becomes a
 * rejection, as it would from a real database.
 */
function liftStore(kind: string, location: string, sync: SyncStore): RunStore {
  const store: Record<string, unknown> = { kind, location };
  for (const [name, method] of Object.entries(sync) as [string, (...args: unknown[]) => unknown][]) {
    store[name] = (...args: unknown[]): Promise<unknown> => {
      try {
        return Promise.resolve(method(...args));
      } catch (error) {
        return Promise.reject(error instanceof Error ? error : new Error(String(error)));
      }
    };
  }
  return store as unknown as RunStore;
}

/** Runs in creation order (then id), as the SQL stores order them: above zero when `a` is later. */
function compareRunOrder(a: RunRecord, b: RunRecord): number {
  return compareText(a.createdAt, b.createdAt) || compareText(a.id, b.id);
}

function compareDesc(a: string, b: string): number {
  return compareText(b, a);
}

/** Logs are in seq order: binary search for the first line after `seq`. */
function firstIndexAfter(logs: readonly LogRecord[], seq: number): number {
  let lo = 0;
  let hi = logs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (logs[mid]!.seq <= seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
