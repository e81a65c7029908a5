import { createDict } from '../core/json.js';
import { NonRetryableError } from '../errors.js';
import type { Handler } from '../handlers/types.js';
import { CONNECTION_ARG_SCHEMA, type ConnectionArgs } from './connections.js';
import { organismPool } from './db.js';

export const ORGANISM_VIEWS = ['organism_person_daily_activity', 'organism_pair_strength'] as const;

export interface RefreshViewsArgs extends ConnectionArgs {
  views?: string[];
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/;

/** `schema.view` or `view`, each part a plain identifier, returned double-quoted. */
export function quoteViewName(name: string): string {
  const parts = name.split('.');
  if (parts.length > 2 || !parts.every((part) => IDENTIFIER.test(part))) {
    throw new NonRetryableError(
      `"${name}" is not a view name (letters, digits, _ and $, optionally schema.view)`,
    );
  }
  return parts.map((part) => `"${part}"`).join('.');
}

export const refreshMaterializedViewsHandler: Handler<RefreshViewsArgs> = {
  name: 'organism.refresh_materialized_views',
  services: ['postgres'],
  description: 'REFRESH MATERIALIZED VIEW CONCURRENTLY for each view, so readers are never blocked.',
  args: {
    type: 'object',
    additionalProperties: false,
    properties: {
      views: {
        type: 'array',
        items: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_$]*(\\.[A-Za-z_][A-Za-z0-9_$]*)?$' },
        default: [...ORGANISM_VIEWS],
        description: 'Materialized views to refresh, in order; each needs a UNIQUE index.',
      },
      ...CONNECTION_ARG_SCHEMA,
    },
  },
  describe: (args) => `refresh ${(args.views ?? ORGANISM_VIEWS).join(', ')} concurrently`,
  run: async (args, ctx) => {
    const views = args.views ?? [...ORGANISM_VIEWS];
    // Validate all before refreshing any: a typo in the last name should not cost the first refreshes.
    const quoted = views.map(quoteViewName);
    const pool = await organismPool(args, ctx);
    const durations = createDict<number>();
    for (const [i, view] of quoted.entries()) {
      const started = performance.now();
      await pool.query(`REFRESH MATERIALIZED VIEW CONCURRENTLY ${view}`);
      durations[views[i]!] = Math.round(performance.now() - started);
      ctx.log.info(`refreshed ${views[i]} in ${durations[views[i]!]} ms`);
    }
    return { refreshed: views, duration_ms: durations };
  },
};
