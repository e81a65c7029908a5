import type { Plan } from '../compile/plan.js';
import { hashPlanText, parsePlan } from './json-codec.js';

/**
 * The SQL adapters' parsed plans, by hash: a frozen plan is shared by every record of runs of the
 * same plan, and a plan seen before is neither serialised nor hashed again when another run of it
 * is created. Least recently used plans are dropped first.
 */
export class PlanCache {
  readonly #size: number;
  readonly #plans = new Map<string, Plan>();
  /** The JSON text and hash of plans seen before (frozen, so they cannot have changed since). */
  readonly #texts = new WeakMap<Plan, { text: string; hash: string }>();

  constructor(size = 16) {
    this.#size = size;
  }

  /** The JSON text a plan is stored as and the hash it is found by. */
  textOf(plan: Plan): { text: string; hash: string } {
    const known = this.#texts.get(plan);
    if (known && Object.isFrozen(plan)) return known;
    const text = JSON.stringify(plan);
    return { text, hash: hashPlanText(text) };
  }

  /** The cached plan of this hash, if any, now the most recently used. */
  get(hash: string): Plan | undefined {
    const plan = this.#plans.get(hash);
    if (plan) {
      // Keep recently used plans at the end of the map: the oldest entry is evicted first.
      this.#plans.delete(hash);
      this.#plans.set(hash, plan);
    }
    return plan;
  }

  /** The plan of this hash: cached, or parsed from its stored text and cached. */
  remember(hash: string, text: string): Plan {
    const cached = this.get(hash);
    if (cached) return cached;
    const plan = parsePlan(text);
    this.#texts.set(plan, { text, hash });
    this.#plans.set(hash, plan);
    if (this.#plans.size > this.#size) this.#plans.delete(this.#plans.keys().next().value!);
    return plan;
  }
}
