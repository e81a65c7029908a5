import { BlockList, isIP } from 'node:net';
import { NonRetryableError } from '../../errors.js';

/**
 * Which addresses http.request and notify.webhook may connect to. A pipeline is often written by
 * someone other than the operator of the machine it runs on, and a URL often comes from a param:
 * without this, `url: http://169.254.169.254/latest/meta-data/` reads the cloud credentials of the
 * host, and `http://127.0.0.1:5432/` probes its private services (SSRF). So loopback, private,
 * link-local, CGNAT, multicast and reserved addresses are refused unless the task lists the host
 * (or a CIDR holding the address) in `allow_hosts`.
 *
 * The check is made on the address actually connected to (see http-support.ts: the DNS answer is
 * checked inside the connection's own `lookup`), so a name that resolves to a private address, or
 * re-resolves to one after a first check (DNS rebinding), is refused too.
 */

const BLOCKED = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8], // "this network"; 0.0.0.0 reaches the local host
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8],
  ['169.254.0.0', 16], // link-local, including the cloud metadata service 169.254.169.254
  ['172.16.0.0', 12],
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.168.0.0', 16],
  ['198.18.0.0', 15], // benchmarking
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, and the broadcast address
] as const) {
  BLOCKED.addSubnet(network, prefix, 'ipv4');
}
for (const [network, prefix] of [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated, still routed internally in places)
  ['ff00::', 8], // multicast
] as const) {
  BLOCKED.addSubnet(network, prefix, 'ipv6');
}

/** The eight 16-bit groups of an IPv6 address (zone id dropped), or null. */
function ipv6Groups(address: string): number[] | null {
  let text = address.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  // A trailing dotted quad (::ffff:127.0.0.1) is two groups.
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (quad) {
    const [a, b, c, d] = quad.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, quad.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const part = (s: string) => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const head = part(halves[0]!);
  const tail = halves.length === 2 ? part(halves[1]!) : [];
  const fill = 8 - head.length - tail.length;
  if (fill < 0 || (halves.length === 1 && fill !== 0)) return null;
  const groups = [...head, ...Array<number>(fill).fill(0), ...tail];
  return groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : null;
}

/**
 * The IPv4 address an IPv6 address carries, for the forms that reach it: IPv4-mapped
 * (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::a.b.c.d).
 */
function embeddedIpv4(groups: readonly number[]): string | null {
  const zeros = (from: number, to: number) => groups.slice(from, to).every((g) => g === 0);
  const mapped = zeros(0, 5) && groups[5] === 0xffff;
  const compatible = zeros(0, 6) && !(groups[6] === 0 && (groups[7] === 0 || groups[7] === 1));
  const nat64 = groups[0] === 0x64 && groups[1] === 0xff9b && zeros(2, 6);
  if (!mapped && !compatible && !nat64) return null;
  const [hi, lo] = [groups[6]!, groups[7]!];
  return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
}

/** Whether an IP address is one weft refuses by default (not a public unicast address). */
export function isRestrictedAddress(address: string): boolean {
  const bare = address.replace(/^\[|\]$/g, '');
  const family = isIP(bare.replace(/%.*$/, ''));
  if (family === 4) return BLOCKED.check(bare, 'ipv4');
  if (family !== 6) return true; // not an address at all: nothing to connect to safely
  const groups = ipv6Groups(bare);
  if (!groups) return true;
  const v4 = embeddedIpv4(groups);
  if (v4 !== null) return BLOCKED.check(v4, 'ipv4');
  const canonical = groups.map((g) => g.toString(16)).join(':');
  return BLOCKED.check(canonical, 'ipv6');
}

export interface OutboundPolicy {
  /** Whether the URL's host name (as the URL parser normalised it) was allowed by name. */
  isHostAllowed(hostname: string): boolean;
  /** Whether connecting to this address is allowed (public, or inside an allowed CIDR/address). */
  isAddressAllowed(address: string): boolean;
}

/**
 * The policy for a task's `allow_hosts`: host names (exact, case-insensitive: "localhost",
 * "db.internal"), IP addresses ("127.0.0.1", "::1") and CIDRs ("10.0.0.0/8", "fd00::/8").
 * A host allowed by name may resolve to any address; otherwise every address must be public or
 * inside an allowed address or CIDR. A malformed entry fails for good.
 */
export function createOutboundPolicy(
  allowHosts: readonly string[] = [],
  argName = 'allow_hosts',
): OutboundPolicy {
  const names = new Set<string>();
  const allowed = new BlockList();
  for (const raw of allowHosts) {
    const entry = raw
      .trim()
      .toLowerCase()
      .replace(/^\[|\]$/g, '');
    const slash = entry.indexOf('/');
    if (slash !== -1) {
      const network = entry.slice(0, slash);
      const prefix = Number(entry.slice(slash + 1));
      const family = isIP(network);
      if (family === 0 || !Number.isInteger(prefix) || prefix < 0 || prefix > (family === 4 ? 32 : 128)) {
        throw new NonRetryableError(`${argName}: "${raw}" is not a valid CIDR (e.g. "10.0.0.0/8")`);
      }
      allowed.addSubnet(network, prefix, family === 4 ? 'ipv4' : 'ipv6');
    } else if (isIP(entry) !== 0) {
      allowed.addAddress(entry, isIP(entry) === 4 ? 'ipv4' : 'ipv6');
    } else if (/^[a-z0-9_.-]+$/.test(entry) && entry !== '') {
      names.add(entry.replace(/\.$/, ''));
    } else {
      throw new NonRetryableError(`${argName}: "${raw}" is not a host name, an IP address or a CIDR`);
    }
  }
  const allowedAddress = (address: string): boolean => {
    const bare = address.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
    const family = isIP(bare);
    if (family === 0) return false;
    if (allowed.check(bare, family === 4 ? 'ipv4' : 'ipv6')) return true;
    // ::ffff:127.0.0.1 is 127.0.0.1 to the network stack: an allowed 127.0.0.1 allows it too.
    const groups = family === 6 ? ipv6Groups(bare) : null;
    const v4 = groups ? embeddedIpv4(groups) : null;
    return v4 !== null && allowed.check(v4, 'ipv4');
  };
  return {
    isHostAllowed: (hostname) =>
      names.has(
        hostname
          .toLowerCase()
          .replace(/^\[|\]$/g, '')
          .replace(/\.$/, ''),
      ),
    isAddressAllowed: (address) => !isRestrictedAddress(address) || allowedAddress(address),
  };
}

/** The refusal: not retryable, since the same URL is refused every time. */
export function refusedAddressError(label: string, host: string, address: string): NonRetryableError {
  const where = host === address ? address : `${host} (${address})`;
  return new NonRetryableError(
    `${label} refused: ${where} is a loopback, private, link-local or otherwise internal address; ` +
      `list the host or its network in allow_hosts to reach it on purpose`,
  );
}
