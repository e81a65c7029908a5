import type { JsonValue } from '../../core/json.js';
import { NonRetryableError } from '../../errors.js';
import type { Handler } from '../types.js';
import { durationSchema } from './arg-schemas.js';
import { createOutboundPolicy } from './outbound-guard.js';
import {
  displayUrl,
  hasHeader,
  isJsonContentType,
  parseHttpUrl,
  sendRequest,
  statusError,
} from './http-support.js';
import { requireDuration } from './sleep.js';

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];
export type ResponseMode = 'json' | 'text' | 'auto';

export interface HttpRequestArgs {
  url: string;
  method?: HttpMethod;
  headers?: Record<string, string>;
  json?: JsonValue;
  body?: string;
  timeout?: string | number;
  /** Internal hosts allowed on purpose: names, addresses or CIDRs. */
  allow_hosts?: string[];
  allow_status?: number[];
  response?: ResponseMode;
}

export type HttpRequestOutput = {
  status: number;
  headers: Record<string, string>;
  body: JsonValue;
};

export const DEFAULT_HTTP_TIMEOUT_MS = 30_000;

/** Response headers kept in the output: the few a later task may want, not the whole set. */
const KEPT_HEADERS = ['content-type', 'content-length', 'location', 'etag', 'last-modified', 'retry-after'];

export const httpRequestHandler: Handler<HttpRequestArgs> = {
  name: 'http.request',
  description:
    'Sends an HTTP request; fails on a status outside 2xx and allow_status (4xx other than 408/429 without retry). ' +
    'Output: { status, headers, body }.',
  args: {
    type: 'object',
    description: 'The request to send.',
    properties: {
      url: {
        type: 'string',
        minLength: 1,
        description: 'An http: or https: URL.',
        examples: ['https://api.example.com/v1/jobs', '${{ env.API_URL }}/health'],
      },
      method: {
        enum: [...HTTP_METHODS],
        description: 'The HTTP method. Default GET.',
        default: 'GET',
        examples: ['POST'],
      },
      headers: {
        type: 'object',
        description: 'Request headers.',
        examples: [{ authorization: 'Bearer ${{ env.API_TOKEN }}' }],
        additionalProperties: { type: 'string' },
      },
      json: {
        description: 'A body sent as JSON (content-type application/json unless headers say otherwise).',
        examples: [{ date: '${{ params.date }}' }],
      },
      body: {
        type: 'string',
        description: 'A body sent as is. Not together with json.',
        examples: ['a=1&b=2'],
      },
      timeout: durationSchema(
        'Gives up on the request after this long (a retryable failure). Default "30s".',
        ['10s', 5],
      ),
      allow_hosts: {
        type: 'array',
        description:
          'Hosts this task may reach although they are loopback, private, link-local or otherwise internal ' +
          '(refused by default): host names, IP addresses or CIDRs. Redirects are checked against it too.',
        examples: [['127.0.0.1'], ['10.0.0.0/8', 'metrics.internal']],
        items: { type: 'string', minLength: 1 },
      },
      allow_status: {
        type: 'array',
        description: 'Statuses accepted besides 2xx, e.g. 404 when absence is an answer.',
        examples: [[404, 409]],
        items: { type: 'integer', minimum: 100, maximum: 599 },
        uniqueItems: true,
      },
      response: {
        enum: ['json', 'text', 'auto'],
        description:
          'How to read the body: json, text, or auto (JSON when the content type says so). Default auto.',
        default: 'auto',
        examples: ['json'],
      },
    },
    // json and body together are refused at run time: a `not` here would give ajv's vague
    // "must NOT be valid" instead of a message that names them.
    required: ['url'],
    additionalProperties: false,
  },
  describe: (args) => {
    const method = args.method ?? 'GET';
    let url: string;
    try {
      url = displayUrl(new URL(args.url));
    } catch {
      url = args.url;
    }
    const body =
      args.json !== undefined ? ' with a JSON body' : args.body !== undefined ? ' with a body' : '';
    const allowed = args.allow_status?.length ? ` (also accepting ${args.allow_status.join(', ')})` : '';
    return `${method} ${url}${body}${allowed}`;
  },
  run: async (args, ctx) => {
    const url = parseHttpUrl(args.url);
    const method = args.method ?? 'GET';
    const timeoutMs =
      args.timeout === undefined ? DEFAULT_HTTP_TIMEOUT_MS : requireDuration(args.timeout, 'timeout');
    if (args.json !== undefined && args.body !== undefined) {
      throw new NonRetryableError('give either json or body, not both');
    }
    const headers: Record<string, string> = { ...args.headers };
    let body = args.body;
    if (args.json !== undefined) {
      body = JSON.stringify(args.json);
      if (!hasHeader(headers, 'content-type')) headers['content-type'] = 'application/json';
    }
    if (body !== undefined && (method === 'GET' || method === 'HEAD')) {
      throw new NonRetryableError(`a ${method} request cannot have a body`);
    }
    const label = `${method} ${displayUrl(url)}`;
    const { response, text } = await sendRequest({
      url,
      method,
      headers,
      body,
      timeoutMs,
      signal: ctx.signal,
      label,
      policy: createOutboundPolicy(args.allow_hosts),
    });

    const accepted = response.ok || (args.allow_status ?? []).includes(response.status);
    if (!accepted) throw statusError(label, response, text);
    ctx.log.debug(`${label} answered ${response.status}`);
    return {
      status: response.status,
      headers: keptHeaders(response.headers),
      body: readBody(text, response.headers.get('content-type'), args.response ?? 'auto', label),
    } satisfies HttpRequestOutput;
  },
};

function keptHeaders(headers: Headers): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const name of KEPT_HEADERS) {
    const value = headers.get(name);
    if (value !== null) kept[name] = value;
  }
  return kept;
}

function readBody(text: string, contentType: string | null, mode: ResponseMode, label: string): JsonValue {
  if (mode === 'text' || (mode === 'auto' && !isJsonContentType(contentType))) return text;
  if (text.trim() === '') return null;
  try {
    return JSON.parse(text) as JsonValue;
  } catch (error) {
    if (mode === 'auto') return text;
    throw new Error(`${label}: the response is not JSON (${(error as Error).message})`, { cause: error });
  }
}
