import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError } from './api-error.js';

/** What a route handler answers; `streamed` means it wrote the response itself (SSE). */
export type Reply =
  | { kind: 'json'; status: number; body: unknown }
  | { kind: 'html'; status: number; body: string }
  | { kind: 'text'; status: number; body: string; contentType: string }
  | { kind: 'streamed' };

export const json = (body: unknown, status = 200): Reply => ({ kind: 'json', status, body });
export const htmlReply = (body: string, status = 200): Reply => ({ kind: 'html', status, body });

export const CONTENT_SECURITY_POLICY =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/** Headers on every response, data or not. */
export function setSecurityHeaders(res: ServerResponse): void {
  res.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Cache-Control', 'no-store');
}

export function sendReply(res: ServerResponse, reply: Reply, head = false): void {
  if (reply.kind === 'streamed') return;
  let body: string;
  let type: string;
  switch (reply.kind) {
    case 'json':
      body = JSON.stringify(reply.body, null, 2) + '\n';
      type = 'application/json; charset=utf-8';
      break;
    case 'html':
      body = reply.body;
      type = 'text/html; charset=utf-8';
      break;
    case 'text':
      body = reply.body;
      type = reply.contentType;
      break;
  }
  res.statusCode = reply.status;
  res.setHeader('Content-Type', type);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(head ? undefined : body);
}

export function errorReply(error: ApiError): Reply {
  return json(
    {
      error: {
        code: error.code,
        message: error.message,
        ...(error.details ? { details: error.details } : {}),
      },
    },
    error.status,
  );
}

const MAX_BODY_BYTES = 1024 * 1024;

/**
 * A JSON request body. POSTs must say `Content-Type: application/json`: a cross-site form can
 * only send "simple" content types, so this keeps another web page from posting actions to a
 * dashboard on localhost (a cross-origin JSON POST needs a CORS preflight, which is never granted).
 */
export async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    throw new ApiError(
      415,
      'UNSUPPORTED_MEDIA_TYPE',
      'send the request body as JSON with Content-Type: application/json',
    );
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES)
      throw new ApiError(413, 'PAYLOAD_TOO_LARGE', 'the request body is larger than 1 MiB');
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ApiError(400, 'BAD_REQUEST', 'the request body is not valid JSON');
  }
}
