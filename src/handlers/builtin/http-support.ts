import { formatDuration } from '../../core/duration.js';
import { NonRetryableError } from '../../errors.js';

/** What http.request and notify.webhook share: URL checks, one bounded fetch, status verdicts. */

/** Parses an http(s) URL; anything else fails for good, since no retry can fix it. */
export function parseHttpUrl(text: string, argName = 'url'): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new NonRetryableError(`${argName}: not a valid URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new NonRetryableError(`${argName}: only http: and https: URLs are allowed, not ${url.protocol}`);
  }
  return url;
}

/**
 * The URL as shown in messages and plans: no credentials, no query string. Both often hold
 * tokens, and these messages are stored and printed.
 */
export function displayUrl(url: URL): string {
  return `${url.origin}${url.pathname}${url.search === '' ? '' : '?…'}`;
}

export interface SendOptions {
  url: URL;
  method: string;
  headers: Record<string, string>;
  body?: string;
  timeoutMs: number;
  /** The task's signal: timeout or cancel of the whole task. */
  signal: AbortSignal;
  /** Names the request in messages, e.g. "POST https://example.com/x". */
  label: string;
}

export interface SentResponse {
  response: Response;
  text: string;
}

/**
 * One request, body read included, bounded by the task's signal and by its own timeout. An abort
 * of the task rethrows the signal's reason; a timeout or network failure is a plain (retryable) error.
 */
export async function sendRequest(options: SendOptions): Promise<SentResponse> {
  options.signal.throwIfAborted();
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = AbortSignal.any([options.signal, timeout]);
  try {
    const response = await fetch(options.url, {
      method: options.method,
      headers: options.headers,
      body: options.body,
      signal,
      redirect: 'follow',
    });
    const text = options.method === 'HEAD' ? '' : await response.text();
    return { response, text };
  } catch (error) {
    options.signal.throwIfAborted();
    if (timeout.aborted) {
      throw new Error(`${options.label} timed out after ${formatDuration(options.timeoutMs)}`, {
        cause: error,
      });
    }
    // fetch says only "fetch failed"; the cause says why (ECONNREFUSED, a DNS failure, …).
    const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new Error(`${options.label} failed: ${reason}`, { cause: error });
  }
}

/**
 * 5xx, 408 and 429 say "try again later". Any other refused status (a 4xx, an unfollowed 3xx)
 * would come back the same however often the request is sent.
 */
export function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 408 || status === 429;
}

/** The error for a refused status: a NonRetryableError unless isRetryableStatus. */
export function statusError(label: string, response: Response, bodyText: string): Error {
  const snippet = oneLine(bodyText, 300);
  const message = `${label} answered ${response.status}${response.statusText ? ` ${response.statusText}` : ''}${
    snippet ? `: ${snippet}` : ''
  }`;
  return isRetryableStatus(response.status) ? new Error(message) : new NonRetryableError(message);
}

/** Text squeezed onto one line and cut to `max` characters. */
export function oneLine(text: string, max: number): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max)}…` : line;
}

export function isJsonContentType(contentType: string | null): boolean {
  if (contentType === null) return false;
  const type = contentType.split(';')[0]?.trim().toLowerCase() ?? '';
  return type === 'application/json' || type.endsWith('+json');
}

export function hasHeader(headers: Record<string, string>, name: string): boolean {
  const lower = name.toLowerCase();
  return Object.keys(headers).some((key) => key.toLowerCase() === lower);
}
