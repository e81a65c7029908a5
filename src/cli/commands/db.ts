import { WeftError } from '../../errors.js';
import { DEFAULT_DATABASE_URL, getPool } from '../../organism/connections.js';
import { migrateOrganism, ORGANISM_MIGRATIONS } from '../../organism/index.js';
import { redactUrl } from '../../store/open-store.js';
import type { CliContext } from '../context.js';

export interface DbMigrateOptions {
  databaseUrl?: string;
  format: 'text' | 'json';
}

/** What one migration step reports: which versions it applied now, and anything worth saying. */
export interface MigrationStepResult {
  step: string;
  applied: { version: number; name: string }[];
  notes: string[];
}

/**
 * One schema that `weft db migrate` brings up to date. A new schema (the PostgreSQL run store's) is
 * one more entry in `migrationSteps`: the command runs them in order and reports each.
 */
export interface MigrationStep {
  name: string;
  run: (url: string) => Promise<MigrationStepResult>;
}

const organismStep: MigrationStep = {
  name: 'organism',
  run: async (url) => {
    const result = await migrateOrganism(getPool(url));
    return {
      step: 'organism',
      applied: result.applied.map((version) => ({
        version,
        name: ORGANISM_MIGRATIONS.find((m) => m.version === version)?.name ?? '?',
      })),
      notes: [
        result.metricsStorage === 'hypertable'
          ? 'organism_metrics is a TimescaleDB hypertable'
          : 'organism_metrics is a plain table indexed on time (timescaledb not available)',
      ],
    };
  },
};

export const migrationSteps: readonly MigrationStep[] = [organismStep];

/**
 * The PostgreSQL run store (runs, fires, requests, the task queue). It also migrates itself when a
 * command opens it; this step lets a deployment do it once, up front, with a privileged role.
 */
async function migrateRunStore(url: string): Promise<MigrationStepResult> {
  const [{ createStorePool }, { migratePostgres }, { POSTGRES_MIGRATIONS }] = await Promise.all([
    import('../../store/postgres/pool.js'),
    import('../../store/postgres/migrate.js'),
    import('../../store/postgres/migrations/index.js'),
  ]);
  const pool = createStorePool(url);
  try {
    const result = await migratePostgres(pool, { location: redactUrl(url) });
    return {
      step: 'run store',
      applied: result.applied.map((version) => ({
        version,
        name: POSTGRES_MIGRATIONS.find((m) => m.version === version)?.name ?? '?',
      })),
      notes: [`run store schema version ${result.to}`],
    };
  } finally {
    await pool.end();
  }
}

/** `weft db migrate`: applies the pending PostgreSQL migrations. Exit 1 when the server cannot be reached. */
export async function dbMigrateCommand(ctx: CliContext, options: DbMigrateOptions): Promise<number> {
  const url = options.databaseUrl ?? ctx.io.env.DATABASE_URL ?? DEFAULT_DATABASE_URL;
  const results: MigrationStepResult[] = [];
  const storeSpec = ctx.options.store ?? ctx.io.env.WEFT_STORE ?? (await ctx.config()).config.store;
  const steps: MigrationStep[] = [...migrationSteps];
  if (storeSpec && /^postgres(ql)?:\/\//.test(storeSpec)) {
    steps.push({ name: 'run store', run: () => migrateRunStore(storeSpec) });
  }
  for (const step of steps) {
    try {
      results.push(await step.run(url));
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new WeftError(
        'SERVICE_UNAVAILABLE',
        `${step.name} migrations on ${redactUrl(url)} failed: ${message}`,
        {
          cause: error,
          retryable: false,
          hint: 'check that PostgreSQL is running and --database-url (or DATABASE_URL) points at it',
        },
      );
    }
  }
  if (options.format === 'json') {
    ctx.io.stdout(JSON.stringify({ database: redactUrl(url), steps: results }, null, 2) + '\n');
    return 0;
  }
  const c = ctx.io.colors;
  ctx.io.stdout(`migrating ${redactUrl(url)}\n`);
  for (const result of results) {
    const applied =
      result.applied.length === 0
        ? c.dim('already up to date')
        : `applied ${result.applied.map((m) => `${String(m.version).padStart(3, '0')}-${m.name}`).join(', ')}`;
    ctx.io.stdout(`  ${c.bold(result.step)}: ${applied}\n`);
    for (const note of result.notes) ctx.io.stdout(`    ${note}\n`);
  }
  return 0;
}
