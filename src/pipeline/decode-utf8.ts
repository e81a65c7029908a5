/**
 * Strict UTF-8 decoding of a pipeline file. `readFile(path, 'utf8')` replaces every bad byte with
 * U+FFFD, so a file with stray Latin-1 or binary bytes would validate and run with text the user
 * never wrote; here such a file is refused at its first bad byte instead.
 */

import type { Diagnostic } from '../errors.js';

export type DecodedText =
  | { ok: true; text: string }
  | { ok: false; byte: number; offset: number; line: number; column: number };

const strict = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes `bytes` or says where the first invalid sequence starts. A leading BOM is accepted (and
 * dropped, as YAML ignores it). `line` and `column` are 1-based and count UTF-16 units, as yaml's
 * LineCounter does, so they match the other diagnostics' positions.
 */
export function decodeUtf8(bytes: Uint8Array): DecodedText {
  try {
    return { ok: true, text: strict.decode(bytes) };
  } catch {
    // Only a failed decode pays for the byte-by-byte scan.
    const offset = firstInvalidUtf8(bytes);
    // Everything before `offset` is valid, so this decode cannot throw.
    const before = strict.decode(bytes.subarray(0, offset));
    const lineStart = before.lastIndexOf('\n') + 1;
    let line = 1;
    for (let i = before.indexOf('\n'); i !== -1; i = before.indexOf('\n', i + 1)) line += 1;
    return { ok: false, byte: bytes[offset] ?? 0, offset, line, column: before.length - lineStart + 1 };
  }
}

/** The YAML_ENCODING diagnostic for a file that failed to decode, at its first bad byte. */
export function encodingDiagnostic(file: string, failure: Extract<DecodedText, { ok: false }>): Diagnostic {
  const hex = failure.byte.toString(16).padStart(2, '0');
  return {
    code: 'YAML_ENCODING',
    severity: 'error',
    message: `the file is not valid UTF-8: byte 0x${hex} (byte offset ${failure.offset}) does not start a valid UTF-8 character`,
    file,
    line: failure.line,
    column: failure.column,
    path: [],
  };
}

/**
 * Byte offset where the first ill-formed sequence starts (Unicode Table 3-7: no overlongs, no
 * surrogates, nothing above U+10FFFF), or `bytes.length` if there is none.
 */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const lead = bytes[i]!;
    if (lead < 0x80) {
      i += 1;
      continue;
    }
    let trailing: number;
    let low = 0x80;
    let high = 0xbf;
    if (lead >= 0xc2 && lead <= 0xdf) trailing = 1;
    else if (lead >= 0xe0 && lead <= 0xef) trailing = 2;
    else if (lead >= 0xf0 && lead <= 0xf4) trailing = 3;
    else return i;
    // The second byte's range is narrower for these leads (overlongs, surrogates, > U+10FFFF).
    if (lead === 0xe0) low = 0xa0;
    else if (lead === 0xed) high = 0x9f;
    else if (lead === 0xf0) low = 0x90;
    else if (lead === 0xf4) high = 0x8f;
    for (let k = 1; k <= trailing; k++) {
      const next = bytes[i + k];
      if (next === undefined || next < (k === 1 ? low : 0x80) || next > (k === 1 ? high : 0xbf)) return i;
    }
    i += trailing + 1;
  }
  return bytes.length;
}
