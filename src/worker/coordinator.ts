import type { Plan, PlanTask } from '../compile/plan.js';
import { decideTrigger } from '../engine/trigger-rules.js';
import { WeftError } from '../errors.js';
import type { HookRecord } from '../store/run-store.js';
import { change, type Change } from './coord-changes.js';
import { isUnfinished, outcomeOf, planIndex, type CoordState, type PlanIndex } from './coord-state.js';

/** Mutable working set of one advance: the states and what was decided. */
export class Coordinator {
  readonly plan: Plan;
  readonly index: PlanIndex;
  readonly states: CoordState[];
  readonly changes: Change[] = [];
  readonly hooks: HookRecord[] = [];
  readonly now: number;
  #evaluate: number[] = [];

  constructor(plan: Plan, states: readonly CoordState[], now: number) {
    if (states.length !== plan.order.length) {
      throw new WeftError(
        'INTERNAL',
        `the coordination states hold ${states.length} task(s), the plan ${plan.order.length}`,
        { retryable: false },
      );
    }
    this.plan = plan;
    this.index = planIndex(plan);
    this.states = [...states];
    this.now = now;
  }

  at(task: string): number {
    const i = this.index.position.get(task);
    if (i === undefined)
      throw new WeftError('INTERNAL', `the plan has no task "${task}"`, { retryable: false });
    return i;
  }

  /** Queues the dependents of a task that just finished for a decision. */
  finishedAt(i: number): void {
    for (const dependent of this.index.tasks[i]!.dependents) this.#evaluate.push(this.at(dependent));
  }

  /**
   * Decides waiting tasks queued for evaluation (transitively: a skip is a finish too). Tasks that
   * can run are enqueued at `availableAt`.
   */
  decide(availableAt: number, delayMs: number): void {
    // Many finished upstream tasks of one dependent (a fan-in) ask for its decision many times:
    // it is taken again only when a state changed since (a skip, which is a finish too).
    const decidedAt = new Map<number, number>();
    let version = 0;
    while (this.#evaluate.length > 0) {
      const i = this.#evaluate.pop()!;
      if (this.states[i] !== 'waiting' || decidedAt.get(i) === version) continue;
      decidedAt.set(i, version);
      const task = this.index.tasks[i]!;
      if (this.#mustWait(task)) continue;
      const upstream = task.dependsOn.map((dep) => {
        const d = this.at(dep);
        return { task: dep, outcome: outcomeOf(this.states[d]!, this.index.tasks[d]!) };
      });
      const decision = decideTrigger(task.triggerRule, upstream);
      if (decision.kind === 'wait') continue;
      if (decision.kind === 'skip') {
        this.states[i] = 'skipped';
        version += 1;
        this.changes.push(
          change({
            task: task.name,
            from: 'pending',
            to: 'skipped',
            reason: decision.reason,
            finished: true,
          }),
        );
        this.finishedAt(i);
        continue;
      }
      this.states[i] = 'queued';
      this.changes.push({
        type: 'enqueue',
        task: task.name,
        queue: task.queue,
        availableAt,
        delayMs,
        mode: 'new',
      });
    }
  }

  /**
   * A cheap pre-check before decideTrigger (which builds the whole upstream list): with an
   * upstream task unfinished and nothing that could decide early, the answer is `wait`.
   */
  #mustWait(task: PlanTask): boolean {
    let unfinished = false;
    for (const dep of task.dependsOn) {
      const d = this.at(dep);
      const outcome = outcomeOf(this.states[d]!, this.index.tasks[d]!);
      if (outcome === 'unfinished') {
        unfinished = true;
        continue;
      }
      switch (task.triggerRule) {
        case 'all_success':
          if (outcome !== 'success') return false;
          break;
        case 'all_done':
          break;
        case 'one_failed':
          if (outcome === 'failed') return false;
          break;
        case 'all_failed':
          if (outcome !== 'failed') return false;
          break;
      }
    }
    return unfinished;
  }

  /** Every waiting task, for a first decision (run start, run retry). */
  evaluateAll(): void {
    for (let i = this.states.length - 1; i >= 0; i--)
      if (this.states[i] === 'waiting') this.#evaluate.push(i);
  }

  isComplete(): boolean {
    return !this.states.some(isUnfinished);
  }
}
