import { isIP } from 'node:net';
import { UsageError } from '../errors.js';

/** The environment variable `weft serve` reads the API token from. */
export const API_TOKEN_ENV = 'WEFT_API_TOKEN';

/** True for names and addresses that only this machine can reach: localhost, 127.0.0.0/8, ::1. */
export function isLoopbackHost(host: string): boolean {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (h.startsWith('::ffff:')) h = h.slice('::ffff:'.length);
  if (isIP(h) === 4) return h.split('.')[0] === '127';
  if (isIP(h) === 6) return /^(0{0,4}:){7}0{0,3}1$|^::1$/.test(h);
  return false;
}

/**
 * Refuses to expose the API beyond this machine without a token: anyone who can reach the port
 * could otherwise start and cancel runs and read every log. Throws a UsageError (exit code 2).
 */
export function checkBindSecurity(host: string, token: string | undefined | null): void {
  if (isLoopbackHost(host)) return;
  if (typeof token === 'string' && token.length > 0) return;
  throw new UsageError(
    `refusing to serve on ${host || 'all interfaces'} without an API token: anyone who can reach it could run and cancel pipelines`,
    {
      hint: `set ${API_TOKEN_ENV} to a long random secret (e.g. \`openssl rand -hex 32\`), or bind to 127.0.0.1`,
    },
  );
}
