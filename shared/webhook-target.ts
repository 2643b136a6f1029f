// Where a webhook may post: the SSRF guard, used when a webhook is registered (a 400) and again
// before every attempt (workers/webhook-post.ts connects to the very address checked here, so a
// name that resolves differently the second time, DNS rebinding, cannot reach anything else).
// Only http(s) URLs without credentials; every address the host resolves to must be public:
// loopback, private, link-local, carrier-grade NAT, multicast, reserved and documentation ranges
// are refused, in IPv4 and IPv6, IPv4-mapped and NAT64 IPv6 by the IPv4 address they carry,
// unless QUARRY_WEBHOOK_ALLOW lists the host name or a CIDR range holding the address.
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { QuarryError } from './errors.ts';

export const MAX_WEBHOOK_URL_LENGTH = 2048;

/** A target that passed the check: connect to `address`, send `url`'s host as Host (and SNI). */
export interface CheckedTarget {
  readonly url: URL;
  readonly address: string;
  readonly family: 4 | 6;
}

const refused = (message: string) =>
  new QuarryError('QUARRY_ERR_WEBHOOK_TARGET', `url: ${message}`, { field: 'url' });

const BLOCKED = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.88.99.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  BLOCKED.addSubnet(net, bits, 'ipv4');
}
for (const [net, bits] of [
  ['::', 96], // unspecified, loopback ::1, IPv4-compatible
  ['100::', 64], // discard
  ['2001::', 23], // IETF special purpose (Teredo among them)
  ['2001:db8::', 32], // documentation
  ['2002::', 16], // 6to4: carries an IPv4 address of any kind
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
] as const) {
  BLOCKED.addSubnet(net, bits, 'ipv6');
}

/** The 8 16-bit groups of an IPv6 address (with or without an embedded dotted quad). */
function ipv6Groups(address: string): number[] {
  let text = address.toLowerCase().replace(/%.*$/, '');
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (quad) {
    const [a, b, c, d] = quad.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, quad.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : new Array(8 - left.length - right.length).fill('0');
  return [...left, ...fill, ...right].map((g) => Number.parseInt(g, 16));
}

/** The IPv4 address an IPv4-mapped (::ffff:0:0/96) or NAT64 (64:ff9b::/96) address carries. */
export function embeddedIpv4(address: string): string | undefined {
  if (isIP(address) !== 6) return undefined;
  const g = ipv6Groups(address);
  const mapped = g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff;
  const nat64 = g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0);
  if (!mapped && !nat64) return undefined;
  return [g[6]! >> 8, g[6]! & 0xff, g[7]! >> 8, g[7]! & 0xff].join('.');
}

/** True for an address a webhook may not reach unless allowed (see the header). */
export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return BLOCKED.check(address, 'ipv4');
  if (family !== 6) return true;
  const v4 = embeddedIpv4(address);
  if (v4 !== undefined) return BLOCKED.check(v4, 'ipv4');
  return BLOCKED.check(address, 'ipv6');
}

/** QUARRY_WEBHOOK_ALLOW, parsed: host names, and addresses or CIDR ranges. */
export class WebhookAllowList {
  readonly #hosts = new Set<string>();
  readonly #ranges = new BlockList();

  constructor(entries: readonly string[]) {
    for (const raw of entries) {
      const entry = raw
        .trim()
        .toLowerCase()
        .replace(/^\[|\]$/g, '');
      const [net, bitsText] = entry.split('/');
      const family = isIP(net ?? '');
      if (family !== 0) {
        const type = family === 4 ? 'ipv4' : 'ipv6';
        const bits = bitsText === undefined ? (family === 4 ? 32 : 128) : Number(bitsText);
        if (!Number.isInteger(bits) || bits < 0 || bits > (family === 4 ? 32 : 128)) {
          throw new QuarryError('QUARRY_ERR_CONFIG', `QUARRY_WEBHOOK_ALLOW: "${raw}" is not a CIDR range`, {
            field: 'QUARRY_WEBHOOK_ALLOW',
          });
        }
        this.#ranges.addSubnet(net!, bits, type);
      } else if (/^[a-z0-9.-]{1,253}$/.test(entry)) {
        this.#hosts.add(entry.replace(/\.$/, ''));
      } else {
        throw new QuarryError(
          'QUARRY_ERR_CONFIG',
          `QUARRY_WEBHOOK_ALLOW: "${raw}" is not a host or CIDR range`,
          {
            field: 'QUARRY_WEBHOOK_ALLOW',
          },
        );
      }
    }
  }

  allowsHost(host: string): boolean {
    return this.#hosts.has(host.toLowerCase().replace(/\.$/, ''));
  }

  allowsAddress(address: string): boolean {
    const family = isIP(address);
    if (family === 0) return false;
    if (this.#ranges.check(address, family === 4 ? 'ipv4' : 'ipv6')) return true;
    const v4 = embeddedIpv4(address);
    return v4 !== undefined && this.#ranges.check(v4, 'ipv4');
  }
}

/** The URL's form alone (no DNS): http(s), a host, no credentials, bounded length. */
export function parseWebhookUrl(text: string): URL {
  if (text.length > MAX_WEBHOOK_URL_LENGTH) refusedThrow(`longer than ${MAX_WEBHOOK_URL_LENGTH} characters`);
  if (!URL.canParse(text)) refusedThrow('not a valid URL');
  const url = new URL(text);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    refusedThrow(`scheme "${url.protocol.replace(/:$/, '')}" is not allowed (only http and https)`);
  }
  if (url.hostname === '') refusedThrow('has no host');
  if (url.username !== '' || url.password !== '') refusedThrow('must not carry credentials (user:password@)');
  return url;
}

function refusedThrow(message: string): never {
  throw refused(message);
}

/**
 * Checks a webhook URL and resolves its host within `timeoutMs`: every address must be public,
 * or allowed by `allow`. Returns the address to connect to; throws QUARRY_ERR_WEBHOOK_TARGET.
 */
export async function checkWebhookTarget(
  text: string,
  allow: WebhookAllowList,
  timeoutMs: number,
): Promise<CheckedTarget> {
  const url = parseWebhookUrl(text);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  let addresses: { address: string; family: number }[];
  if (isIP(host) !== 0) {
    addresses = [{ address: host, family: isIP(host) }];
  } else {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(refused(`resolving "${host}" took longer than ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      addresses = await Promise.race([lookup(host, { all: true, verbatim: true }), timeout]);
    } catch (error) {
      if (error instanceof QuarryError) throw error;
      throw new QuarryError('QUARRY_ERR_WEBHOOK_TARGET', `url: the host "${host}" does not resolve`, {
        field: 'url',
        cause: error,
      });
    } finally {
      clearTimeout(timer);
    }
  }
  if (addresses.length === 0) refusedThrow(`the host "${host}" does not resolve`);
  const hostAllowed = allow.allowsHost(host);
  for (const { address } of addresses) {
    if (isPrivateAddress(address) && !hostAllowed && !allow.allowsAddress(address)) {
      refusedThrow(
        `"${host}" resolves to ${address}, a private, loopback or link-local address (QUARRY_WEBHOOK_ALLOW can allow it)`,
      );
    }
  }
  const first = addresses[0]!;
  return { url, address: first.address, family: first.family === 6 ? 6 : 4 };
}
