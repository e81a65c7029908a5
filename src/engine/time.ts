/** Stored times are ISO 8601 strings in UTC with milliseconds (see RunStore). */
let lastMs = Number.NaN;
let lastText = '';

export function toIso(ms: number): string {
  // Thousands of writes share a millisecond in a busy run: format each millisecond once.
  if (ms !== lastMs) {
    lastText = new Date(ms).toISOString();
    lastMs = ms;
  }
  return lastText;
}

export function fromIso(text: string): number {
  return Date.parse(text);
}
