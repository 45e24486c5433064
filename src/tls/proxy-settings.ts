import { createHash, X509Certificate } from 'node:crypto';
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { BlockList, isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createSecureContext, type SecureContext } from 'node:tls';
import { InvalidInputError } from '../errors.js';
import { NotReadableAsFile, readRegularFileSync, statsStamp } from '../regular-file.js';
import { bareHostname } from './endpoint.js';

/** How often a cached proxy.tls.ca is checked against its files (an in-place rotation is picked up this soon). */
export const PROXY_CA_RECHECK_MS = 1_000;

interface ProxyTrust {
  context: SecureContext;
  id: string;
  /** Size, mtime and inode of each file when it was read. */
  stamp: string;
  checkedAt: number;
}

const contexts = new Map<string, ProxyTrust>();

/** The stamp of each file (statsStamp); `missing` for one that is gone. */
function stampOf(files: readonly string[]): string {
  return files
    .map((file) => {
      try {
        return statsStamp(statSync(resolve(file)));
      } catch {
        return 'missing';
      }
    })
    .join('\0');
}

/**
 * The trust of an `https://` proxy from proxy.tls.ca (PEM files, resolved against the working
 * directory), built once per file list and rebuilt when a file changes (checked at most once per
 * PROXY_CA_RECHECK_MS); `id` (a hash of the bytes) goes into the agent key, so new connections use
 * the new trust. A changed file that cannot be used keeps the last good trust.
 */
export function proxyTlsFor(files: readonly string[]): { context: SecureContext; id: string } {
  const key = files.join('\0');
  const cached = contexts.get(key);
  const now = performance.now();
  if (cached && now - cached.checkedAt < PROXY_CA_RECHECK_MS) return cached;
  const stamp = stampOf(files);
  if (cached) {
    cached.checkedAt = now;
    if (cached.stamp === stamp) return cached;
    try {
      const fresh = { ...build(files), stamp, checkedAt: now };
      contexts.set(key, fresh);
      return fresh;
    } catch {
      // Mid-rotation or broken: the last good trust stays until the files are right again.
      cached.stamp = stamp;
      return cached;
    }
  }
  const entry = { ...build(files), stamp, checkedAt: now };
  contexts.set(key, entry);
  return entry;
}

/** At least one PEM certificate block that parses. */
function hasCertificate(pem: string): boolean {
  for (const block of pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []) {
    try {
      new X509Certificate(block);
      return true;
    } catch {
      // the next block may be whole
    }
  }
  return false;
}

function build(files: readonly string[]): { context: SecureContext; id: string } {
  const pems = files.map((file) => {
    try {
      return readRegularFileSync(resolve(file)).toString('utf8');
    } catch (cause) {
      throw new InvalidInputError('SVCNODE_FILE_NOT_FOUND', `proxy.tls.ca: cannot read ${resolve(file)}${cause instanceof NotReadableAsFile ? `: it ${cause.message}` : ''}`, { cause, file: resolve(file), field: '/proxy/tls/ca', hint: 'list PEM files of the proxy\'s CA; relative paths resolve against the working directory' });
    }
  });
  // OpenSSL skips text that is not PEM: a file without a certificate would leave the proxy untrusted, unexplained.
  files.forEach((file, i) => {
    if (!hasCertificate(pems[i] as string)) throw new InvalidInputError('SVCNODE_INVALID_BUNDLE', `proxy.tls.ca: ${resolve(file)} holds no PEM certificate`, { file: resolve(file), field: '/proxy/tls/ca', hint: 'proxy.tls.ca must list PEM files of the proxy\'s CA (-----BEGIN CERTIFICATE-----)' });
  });
  let context: SecureContext;
  try {
    context = createSecureContext({ ca: pems });
  } catch (cause) {
    throw new InvalidInputError('SVCNODE_INVALID_BUNDLE', `proxy.tls.ca: the TLS library refused ${files.join(', ')}`, { cause, field: '/proxy/tls/ca', hint: 'proxy.tls.ca must list PEM certificate files' });
  }
  return { context, id: createHash('sha256').update(pems.join('\0')).digest('hex') };
}

/** A CIDR block (`10.0.0.0/8`, `fd00::/8`): its address, prefix length and family; undefined when `entry` is not one. */
export function cidrBlock(entry: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const m = /^\[?([0-9a-f.:]+)\]?\/(\d{1,3})$/i.exec(entry.trim());
  if (!m) return undefined;
  const version = isIP(m[1] as string);
  const prefix = Number(m[2]);
  if (version === 0 || prefix > (version === 4 ? 32 : 128)) return undefined;
  return { address: m[1] as string, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** Parsed CIDR entries, by their text (NO_PROXY and node lists name the same few). */
const blocks = new Map<string, { list: BlockList; family: 'ipv4' | 'ipv6' } | null>();

function blockOf(entry: string): { list: BlockList; family: 'ipv4' | 'ipv6' } | null {
  let block = blocks.get(entry);
  if (block === undefined) {
    const cidr = cidrBlock(entry);
    block = null;
    if (cidr) {
      block = { list: new BlockList(), family: cidr.family };
      block.list.addSubnet(cidr.address, cidr.prefix, cidr.family);
    }
    if (blocks.size >= 256) blocks.clear();
    blocks.set(entry, block);
  }
  return block;
}

/** A host name without its trailing dot (`api.example.` is the fully qualified `api.example`). */
const withoutRootDot = (name: string): string => (name.endsWith('.') ? name.slice(0, -1) : name);

/**
 * NO_PROXY-style bypass: a host (`api.example`), a domain suffix (`.example` or `example`
 * also matching subdomains), `host:port`, a CIDR block matching IP-address URLs
 * (`10.0.0.0/8`, `fd00::/8`; names are not resolved for it, as curl does), or `*`. Names compare
 * without a trailing dot. The node's list and the worker's NO_PROXY environment variable both apply.
 */
export function bypassesProxy(url: URL, nodeList: readonly string[] | undefined, envList: string | undefined): boolean {
  const host = withoutRootDot(bareHostname(url.hostname).toLowerCase());
  const port = url.port || '443';
  const ipVersion = isIP(host);
  const entries = [...(nodeList ?? []), ...(envList ? envList.split(/[\s,]+/) : [])];
  return entries.some((raw) => {
    const entry = raw.trim().toLowerCase();
    if (entry === '') return false;
    if (entry === '*') return true;
    if (entry.includes('/')) {
      const block = blockOf(entry);
      const family = ipVersion === 4 ? 'ipv4' : 'ipv6';
      // A block matches addresses of its own family only (BlockList would match IPv4 in ::/0 as ::ffff:a.b.c.d).
      return ipVersion !== 0 && block !== null && block.family === family && block.list.check(host, family);
    }
    // `host:port`, `[v6]:port`; a bare IPv6 address has several colons and no port.
    const bareV6 = !entry.startsWith('[') && entry.indexOf(':') !== entry.lastIndexOf(':');
    const m = bareV6 ? undefined : /^(.*?)(?::(\d+))?$/.exec(entry);
    const name = withoutRootDot(bareHostname((m?.[1] ?? entry).replace(/^\*?\./, '')));
    if (m?.[2] !== undefined && m[2] !== port) return false;
    return host === name || host.endsWith(`.${name}`);
  });
}
