import { randomBytes } from 'node:crypto';

/**
 * Run ids: `r_` + 10 characters of time + 8 characters of randomness, in Crockford base32
 * (0-9 A-Z without I, L, O, U), e.g. `r_01JAB3KZ7M4QF2XW9CDE`. Like a ULID, shortened:
 *  - sortable: the first 10 characters are the creation time in milliseconds (good until the year
 *    10889), so ids sort in creation order as plain strings, in SQL as in JavaScript;
 *  - unique: 40 random bits per millisecond, and within one process ids created in the same
 *    millisecond (or while the clock goes backwards) increment the previous id's random part, so
 *    they stay unique and strictly increasing.
 */

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const TIME_CHARS = 10;
const RANDOM_CHARS = 8;
const RANDOM_LIMIT = 2 ** (5 * RANDOM_CHARS);

export const RUN_ID_PATTERN = /^r_[0-9A-HJKMNP-TV-Z]{18}$/;

let lastTime = -1;
let lastRandom = 0;

function encode(value: number, chars: number): string {
  let out = '';
  let rest = value;
  for (let i = 0; i < chars; i++) {
    out = ALPHABET[rest % 32]! + out;
    rest = Math.floor(rest / 32);
  }
  return out;
}

function randomPart(): number {
  const bytes = randomBytes(5);
  let value = 0;
  for (const byte of bytes) value = value * 256 + byte;
  return value;
}

/** A new run id for a run created at `now` (epoch milliseconds). */
export function newRunId(now: number): string {
  let time = Math.max(0, Math.floor(now));
  let random: number;
  if (time <= lastTime) {
    time = lastTime;
    random = lastRandom + 1;
    if (random >= RANDOM_LIMIT) {
      // 2^40 ids in one millisecond cannot happen in practice; borrow the next millisecond anyway.
      time += 1;
      random = randomPart();
    }
  } else {
    random = randomPart();
  }
  lastTime = time;
  lastRandom = random;
  return `r_${encode(time, TIME_CHARS)}${encode(random, RANDOM_CHARS)}`;
}

/** The creation time encoded in a run id, or null when it is not one. */
export function runIdTime(id: string): number | null {
  if (!RUN_ID_PATTERN.test(id)) return null;
  let value = 0;
  for (const char of id.slice(2, 2 + TIME_CHARS)) value = value * 32 + ALPHABET.indexOf(char);
  return value;
}
