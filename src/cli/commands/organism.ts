import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { formatDuration } from '../../core/duration.js';
import { isPlainObject } from '../../core/json.js';
import { UsageError, WeftError } from '../../errors.js';
import { DEFAULT_REDIS_URL, getRedis } from '../../organism/connections.js';
import {
  analyseOrganism,
  emitInteractions,
  type AnalyseInput,
  type AnalysisDaily,
  type AnalysisEdge,
  type AnalysisOptions,
  type OrganismAnalysis,
} from '../../organism/index.js';
import type { CliContext } from '../context.js';
import { renderTable } from '../render/table.js';
import { parsePositiveInt } from './common.js';

export interface OrganismEmitOptions {
  count?: string;
  people?: string;
  teams?: string;
  days?: string;
  seed?: string;
  start?: string;
  stream?: string;
  redisUrl?: string;
  format: 'text' | 'json';
}

/** `weft organism emit`: fills a Redis stream with a seeded, realistic organisation's interactions. */
export async function organismEmitCommand(ctx: CliContext, options: OrganismEmitOptions): Promise<number> {
  const count = parseCount('--count', options.count) ?? 10_000;
  const people = parsePositiveInt('--people', options.people);
  const teams = parsePositiveInt('--teams', options.teams);
  const days = parsePositiveInt('--days', options.days);
  const seed = parseCount('--seed', options.seed);
  if (options.start !== undefined && Number.isNaN(Date.parse(options.start))) {
    throw new UsageError(`--start expects an ISO date (2024-06-01), got "${options.start}"`);
  }
  const url = options.redisUrl ?? ctx.io.env.REDIS_URL ?? DEFAULT_REDIS_URL;
  const started = performance.now();
  const result = await emitInteractions({
    redis: getRedis(url),
    count,
    ...(options.stream ? { stream: options.stream } : {}),
    ...(people ? { people } : {}),
    ...(teams ? { teams } : {}),
    ...(days ? { days } : {}),
    ...(seed !== undefined ? { seed } : {}),
    ...(options.start ? { start: options.start } : {}),
  }).catch((error: unknown) => {
    throw new WeftError('SERVICE_UNAVAILABLE', `could not write to Redis at ${url}: ${messageOf(error)}`, {
      cause: error,
      hint: 'start Redis, or point --redis-url / REDIS_URL at it',
    });
  });
  const ms = performance.now() - started;
  if (options.format === 'json') {
    ctx.io.stdout(JSON.stringify({ ...result, duration_ms: Math.round(ms) }, null, 2) + '\n');
    return 0;
  }
  const rate = ms > 0 ? Math.round((result.emitted / ms) * 1000) : result.emitted;
  ctx.io.stdout(
    `emitted ${result.emitted} interaction(s) to ${result.stream} in ${formatDuration(Math.round(ms))} (${rate}/s)\n` +
      `  ${result.people} people in ${result.teams} team(s), hubs ${result.hubs.join(', ')}\n` +
      (result.first_ts ? `  from ${result.first_ts} to ${result.last_ts}\n` : ''),
  );
  return 0;
}

export interface OrganismAnalyseOptions {
  input: string;
  format: 'text' | 'json';
  windowDays?: string;
  minDays?: string;
  lag?: string;
  seed?: string;
  windowEnd?: string;
}

/**
 * `weft organism analyse --input FILE`: the organism metrics of an edge list and a daily series,
 * without any database, so the numbers can be checked against networkx and friends. The input
 * format is documented in docs/organism-metrics.md ("Checking the numbers").
 */
export async function organismAnalyseCommand(
  ctx: CliContext,
  options: OrganismAnalyseOptions,
): Promise<number> {
  const file = resolve(ctx.cwd, options.input);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read --input ${file}: ${messageOf(error)}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw invalidInput(file, `not JSON: ${messageOf(error)}`);
  }
  const input = checkAnalyseInput(file, data);
  const flags: AnalysisOptions = {
    ...optional('windowDays', parsePositiveInt('--window-days', options.windowDays)),
    ...optional('minDays', parseCount('--min-days', options.minDays)),
    ...optional('lag', parsePositiveInt('--lag', options.lag)),
    ...optional('seed', parseCount('--seed', options.seed)),
    ...optional('windowEnd', options.windowEnd),
  };
  const analysis = analyseOrganism({ ...input, options: { ...input.options, ...flags } });
  ctx.io.stdout(
    options.format === 'json' ? JSON.stringify(analysis, null, 2) + '\n' : renderAnalysis(analysis),
  );
  return 0;
}

function renderAnalysis(analysis: OrganismAnalysis): string {
  const num = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(6));
  const people = renderTable(
    [
      ['PERSON', 'IN', 'OUT', 'W_IN', 'W_OUT', 'PAGERANK', 'BETWEENNESS', 'CLUSTERING', 'COMMUNITY'],
      ...analysis.people.map((p) => [
        p.person,
        String(p.in_degree),
        String(p.out_degree),
        num(p.weighted_in_degree),
        num(p.weighted_out_degree),
        p.pagerank.toFixed(6),
        p.betweenness.toFixed(6),
        p.clustering.toFixed(6),
        String(p.community),
      ]),
    ],
    { indent: '  ' },
  );
  let out = `${analysis.people.length} people, ${analysis.communities} communit${analysis.communities === 1 ? 'y' : 'ies'}\n${people}\n`;
  if (analysis.window_start) out += `\ninfluence window ${analysis.window_start} .. ${analysis.window_end}\n`;
  if (analysis.pairs.length > 0) {
    out +=
      renderTable(
        [
          ['SOURCE', 'TARGET', 'INFLUENCE', 'DAYS'],
          ...analysis.pairs.map((p) => [p.source, p.target, p.score.toFixed(6), String(p.days)]),
        ],
        { indent: '  ' },
      ) + '\n';
  } else out += '  no pair had enough active days for an influence score\n';
  return out;
}

function checkAnalyseInput(file: string, data: unknown): AnalyseInput {
  if (!isPlainObject(data)) throw invalidInput(file, 'expected an object { edges, daily }');
  const { edges, daily, people, options } = data;
  if (!Array.isArray(edges))
    throw invalidInput(file, '"edges" must be an array of { source, target, weight }');
  const checkedEdges: AnalysisEdge[] = edges.map((e: unknown, i) => {
    if (!isPlainObject(e) || typeof e.source !== 'string' || typeof e.target !== 'string') {
      throw invalidInput(file, `edges[${i}]: expected { source, target, kind?, weight } with string ids`);
    }
    const weight = e.weight ?? 1;
    if (typeof weight !== 'number' || !(weight > 0) || !Number.isFinite(weight)) {
      throw invalidInput(file, `edges[${i}].weight: expected a positive number`);
    }
    return {
      source: e.source,
      target: e.target,
      weight,
      ...(typeof e.kind === 'string' ? { kind: e.kind } : {}),
    };
  });
  if (daily !== undefined && !Array.isArray(daily)) {
    throw invalidInput(file, '"daily" must be an array of { person, day, count }');
  }
  const checkedDaily: AnalysisDaily[] = (daily ?? []).map((d: unknown, i) => {
    if (
      !isPlainObject(d) ||
      typeof d.person !== 'string' ||
      typeof d.day !== 'string' ||
      !/^\d{4}-\d{2}-\d{2}$/.test(d.day) ||
      typeof d.count !== 'number' ||
      !Number.isFinite(d.count) ||
      d.count < 0
    ) {
      throw invalidInput(file, `daily[${i}]: expected { person, day: "YYYY-MM-DD", count >= 0 }`);
    }
    return { person: d.person, day: d.day, count: d.count };
  });
  if (people !== undefined && !(Array.isArray(people) && people.every((p) => typeof p === 'string'))) {
    throw invalidInput(file, '"people" must be an array of person ids');
  }
  if (options !== undefined && !isPlainObject(options))
    throw invalidInput(file, '"options" must be an object');
  return {
    edges: checkedEdges,
    daily: checkedDaily,
    ...(people ? { people } : {}),
    ...(options ? { options: options as AnalysisOptions } : {}),
  };
}

function invalidInput(file: string, problem: string): WeftError {
  return new WeftError('PARAM_INVALID', `--input ${file}: ${problem}`, {
    retryable: false,
    hint: 'the input format is described in docs/organism-metrics.md ("Checking the numbers")',
  });
}

/** A whole number of 0 or more (a seed or a count may be 0). */
function parseCount(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${flag} expects a whole number, got "${value}"`);
  return n;
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));
