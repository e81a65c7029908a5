import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { formatDuration } from '../../core/duration.js';
import { NonRetryableError } from '../../errors.js';
import { createOutboundPolicy, refusedAddressError, type OutboundPolicy } from './outbound-guard.js';

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
  /** Which hosts and addresses may be connected to (see outbound-guard.ts). Default: public only. */
  policy?: OutboundPolicy;
}

/** What the handlers read of a response. */
export interface ReceivedResponse {
  status: number;
  statusText: string;
  ok: boolean;
  headers: Headers;
}

export interface SentResponse {
  response: ReceivedResponse;
  text: string;
}

/** Redirects followed before giving up. */
export const MAX_REDIRECTS = 5;
/** A response body larger than this is refused rather than held in memory. */
export const MAX_RESPONSE_BYTES = 32 * 1024 * 1024;

/**
 * One request, body read included, bounded by the task's signal and by its own timeout. An abort
 * of the task rethrows the signal's reason; a timeout or network failure is a plain (retryable)
 * error; an address the policy refuses is a NonRetryableError, and nothing is sent to it.
 *
 * Why node:http and not fetch: the address checked must be the address connected to. fetch
 * (undici) resolves the name itself, after any check we could make, so a name that answers a
 * public address to the check and a private one to the connection (DNS rebinding) would get
 * through; and fetch takes no agent or lookup of ours. node:http calls the `lookup` we give it
 * for the connection itself: it resolves every address, checks each, and hands only checked ones
 * to the socket. An IP literal never goes through lookup, so it is checked before connecting.
 * TLS still verifies the certificate against the host name, since the name stays the host.
 * Redirects are followed here (at most MAX_REDIRECTS), each target checked the same way.
 */
export async function sendRequest(options: SendOptions): Promise<SentResponse> {
  options.signal.throwIfAborted();
  const policy = options.policy ?? createOutboundPolicy();
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = AbortSignal.any([options.signal, timeout]);
  let url = options.url;
  let method = options.method;
  let body = options.body;
  const headers: Record<string, string> = { ...options.headers };
  for (let hop = 0; ; hop++) {
    let refusal: NonRetryableError | undefined;
    let sent: { response: ReceivedResponse; text: string; location: string | null };
    try {
      sent = await requestOnce(url, method, headers, body, signal, policy, options.label, (error) => {
        refusal = error;
      });
    } catch (error) {
      options.signal.throwIfAborted();
      if (refusal) throw refusal;
      if (error instanceof NonRetryableError) throw error;
      if (timeout.aborted) {
        throw new Error(`${options.label} timed out after ${formatDuration(options.timeoutMs)}`, {
          cause: error,
        });
      }
      const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
      const reason = cause instanceof Error ? cause.message : String(cause);
      throw new Error(`${options.label} failed: ${reason}`, { cause: error });
    }
    const { status } = sent.response;
    if (!REDIRECTS.has(status) || sent.location === null) return { response: sent.response, text: sent.text };
    if (hop >= MAX_REDIRECTS) {
      throw new NonRetryableError(`${options.label}: more than ${MAX_REDIRECTS} redirects`);
    }
    let next: URL;
    try {
      next = new URL(sent.location, url);
    } catch {
      throw new NonRetryableError(`${options.label}: redirected to an invalid URL`);
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') {
      throw new NonRetryableError(
        `${options.label}: redirected to a ${next.protocol} URL; only http: and https: are followed`,
      );
    }
    // As browsers and fetch do: 303 (and 301/302 after a POST) become a GET without a body.
    if (status === 303 || ((status === 301 || status === 302) && method === 'POST')) {
      if (method !== 'HEAD') method = 'GET';
      body = undefined;
      for (const name of Object.keys(headers)) {
        if (/^content-(type|length|encoding|language|location)$/i.test(name)) delete headers[name];
      }
    }
    // Credentials are for the origin they were written for.
    if (next.origin !== url.origin) {
      for (const name of Object.keys(headers)) {
        if (/^(authorization|cookie|proxy-authorization)$/i.test(name)) delete headers[name];
      }
    }
    url = next;
  }
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

type LookupCallback = (
  error: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

function requestOnce(
  url: URL,
  method: string,
  headers: Record<string, string>,
  body: string | undefined,
  signal: AbortSignal,
  policy: OutboundPolicy,
  label: string,
  onRefused: (error: NonRetryableError) => void,
): Promise<{ response: ReceivedResponse; text: string; location: string | null }> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const hostAllowed = policy.isHostAllowed(url.hostname);
  if (!hostAllowed && isIP(host) !== 0 && !policy.isAddressAllowed(host)) {
    return Promise.reject(refusedAddressError(label, host, host));
  }
  const lookup = (hostname: string, options: LookupOptions, callback: LookupCallback): void => {
    dnsLookup(
      hostname,
      { all: true, family: options.family ?? 0, hints: options.hints ?? 0 },
      (error, addresses) => {
        if (error) return callback(error, []);
        // Every address is checked, not only the first: the socket may try any of them.
        const refused = hostAllowed ? undefined : addresses.find((a) => !policy.isAddressAllowed(a.address));
        if (refused) {
          const refusal = refusedAddressError(label, hostname, refused.address);
          onRefused(refusal);
          return callback(Object.assign(new Error(refusal.message), { code: 'EADDRREFUSED' }), []);
        }
        if (options.all) return callback(null, addresses);
        const first = addresses[0];
        if (!first)
          return callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), []);
        callback(null, first.address, first.family);
      },
    );
  };
  const outgoing: Record<string, string> = {
    'user-agent': 'weft',
    accept: '*/*',
    'accept-encoding': 'gzip, deflate, br',
  };
  for (const [name, value] of Object.entries(headers)) {
    for (const key of Object.keys(outgoing)) if (key === name.toLowerCase()) delete outgoing[key];
    outgoing[name] = value;
  }
  const payload = body === undefined ? undefined : Buffer.from(body, 'utf8');
  if (payload && !Object.keys(outgoing).some((k) => k.toLowerCase() === 'content-length')) {
    outgoing['content-length'] = String(payload.length);
  }
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const request = send(
      url,
      { method, headers: outgoing, signal, lookup: lookup as never, agent: false },
      (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        const encoding = String(response.headers['content-encoding'] ?? '')
          .trim()
          .toLowerCase();
        const decoded =
          encoding === 'gzip' || encoding === 'x-gzip'
            ? response.pipe(createGunzip())
            : encoding === 'deflate'
              ? response.pipe(createInflate())
              : encoding === 'br'
                ? response.pipe(createBrotliDecompress())
                : response;
        decoded.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) {
            reject(
              new NonRetryableError(`${label}: the response is larger than ${MAX_RESPONSE_BYTES} bytes`),
            );
            request.destroy();
            return;
          }
          chunks.push(chunk);
        });
        decoded.on('error', reject);
        response.on('error', reject);
        decoded.on('end', () => {
          const received = new Headers();
          const raw = response.rawHeaders;
          for (let i = 0; i + 1 < raw.length; i += 2) {
            try {
              received.append(raw[i]!, raw[i + 1]!);
            } catch {
              // A header fetch would not accept either: leave it out.
            }
          }
          const status = response.statusCode ?? 0;
          resolve({
            response: {
              status,
              statusText: response.statusMessage ?? '',
              ok: status >= 200 && status < 300,
              headers: received,
            },
            text: method === 'HEAD' ? '' : Buffer.concat(chunks).toString('utf8'),
            location: typeof response.headers.location === 'string' ? response.headers.location : null,
          });
        });
      },
    );
    request.on('error', reject);
    request.end(payload);
  });
}

/**
 * 5xx, 408 and 429 say "try again later". Any other refused status (a 4xx, an unfollowed 3xx)
 * would come back the same however often the request is sent.
 */
export function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 408 || status === 429;
}

/** The error for a refused status: a NonRetryableError unless isRetryableStatus. */
export function statusError(
  label: string,
  response: Pick<ReceivedResponse, 'status' | 'statusText'>,
  bodyText: string,
): Error {
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
