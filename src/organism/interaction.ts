/** One interaction as it travels from the stream to the graph (JSON-serialisable). */
// A type alias, not an interface: only aliases are assignable to JsonValue.
export type Interaction = {
  /** The Redis stream entry id ("1700000000000-0"). */
  id: string;
  source: string;
  target: string;
  kind: string;
  weight: number;
  /** ISO 8601, UTC. */
  ts: string;
};

export type ParseResult = { ok: true; value: Interaction } | { ok: false; reason: string };

const MAX_ID_LENGTH = 200;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/;
const EPOCH_MS = /^\d{1,16}$/;

/** Redis returns an entry's fields as a flat [name, value, name, value, …] list. */
export function fieldsToRecord(fields: readonly string[]): Record<string, string> {
  const record = Object.create(null) as Record<string, string>;
  for (let i = 0; i + 1 < fields.length; i += 2) record[fields[i]!] = fields[i + 1]!;
  return record;
}

/** Parses an interaction timestamp (ISO 8601 or epoch milliseconds) to epoch ms, or null. */
export function parseTimestamp(text: string): number | null {
  const trimmed = text.trim();
  let ms: number;
  if (EPOCH_MS.test(trimmed)) ms = Number(trimmed);
  else if (ISO_DATE.test(trimmed)) ms = Date.parse(trimmed);
  else return null;
  // Out of Date's range (year > 275760) would make toISOString throw later.
  return Number.isFinite(new Date(ms).getTime()) ? ms : null;
}

function checkPerson(value: string | undefined, field: string): string | null {
  if (value === undefined || value.trim() === '') return `missing field "${field}"`;
  if (value.length > MAX_ID_LENGTH) return `field "${field}" longer than ${MAX_ID_LENGTH} characters`;
  return null;
}

/**
 * Validates one stream entry. A rejected entry is dead-lettered with `reason`, never dropped, so the
 * reasons are written for the person reading the dead-letter stream.
 */
export function parseInteraction(id: string, fields: Record<string, string>): ParseResult {
  const source = fields.source;
  const target = fields.target;
  const problem = checkPerson(source, 'source') ?? checkPerson(target, 'target');
  if (problem) return { ok: false, reason: problem };
  if (source === target) return { ok: false, reason: `self loop: source and target are both "${source}"` };
  const kind = fields.kind?.trim();
  if (!kind) return { ok: false, reason: 'missing field "kind"' };
  if (kind.length > 64) return { ok: false, reason: 'field "kind" longer than 64 characters' };
  let weight = 1;
  if (fields.weight !== undefined && fields.weight.trim() !== '') {
    weight = Number(fields.weight);
    // Zero or negative weights would make PageRank's transition probabilities meaningless.
    if (!Number.isFinite(weight) || weight <= 0) {
      return { ok: false, reason: `weight "${fields.weight}" is not a positive number` };
    }
  }
  if (fields.ts === undefined || fields.ts.trim() === '') return { ok: false, reason: 'missing field "ts"' };
  const ms = parseTimestamp(fields.ts);
  if (ms === null)
    return { ok: false, reason: `ts "${fields.ts}" is neither ISO 8601 nor epoch milliseconds` };
  return {
    ok: true,
    value: { id, source: source!, target: target!, kind, weight, ts: new Date(ms).toISOString() },
  };
}

/** Redis stream ids compare as (milliseconds, sequence), not as text. */
export function compareStreamIds(a: string, b: string): number {
  const [aMs = '0', aSeq = '0'] = a.split('-');
  const [bMs = '0', bSeq = '0'] = b.split('-');
  const byMs = BigInt(aMs) - BigInt(bMs);
  if (byMs !== 0n) return byMs < 0n ? -1 : 1;
  const bySeq = BigInt(aSeq) - BigInt(bSeq);
  return bySeq === 0n ? 0 : bySeq < 0n ? -1 : 1;
}
