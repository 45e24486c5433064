import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import { InvalidInputError } from '../errors.js';
import { NotReadableAsFile, readRegularFileSync } from '../regular-file.js';
import { bareHostname } from './endpoint.js';

const contexts = new Map<string, { context: SecureContext; id: string }>();

/**
 * The trust of an `https://` proxy from proxy.tls.ca (PEM files, resolved against the working
 * directory), built once per file list; `id` (a hash of the bytes) goes into the agent key.
 */
export function proxyTlsFor(files: readonly string[]): { context: SecureContext; id: string } {
  const key = files.join('\0');
  const cached = contexts.get(key);
  if (cached) return cached;
  const pems = files.map((file) => {
    try {
      return readRegularFileSync(resolve(file)).toString('utf8');
    } catch (cause) {
      throw new InvalidInputError('SVCNODE_FILE_NOT_FOUND', `proxy.tls.ca: cannot read ${resolve(file)}${cause instanceof NotReadableAsFile ? `: it ${cause.message}` : ''}`, { cause, file: resolve(file), field: '/proxy/tls/ca', hint: 'list PEM files of the proxy\'s CA; relative paths resolve against the working directory' });
    }
  });
  let context: SecureContext;
  try {
    context = createSecureContext({ ca: pems });
  } catch (cause) {
    throw new InvalidInputError('SVCNODE_INVALID_BUNDLE', `proxy.tls.ca: the TLS library refused ${files.join(', ')}`, { cause, field: '/proxy/tls/ca', hint: 'proxy.tls.ca must list PEM certificate files' });
  }
  const entry = { context, id: createHash('sha256').update(pems.join('\0')).digest('hex') };
  contexts.set(key, entry);
  return entry;
}

/**
 * NO_PROXY-style bypass: a host (`api.example`), a domain suffix (`.example` or `example`
 * also matching subdomains), `host:port`, or `*`. The node's list and the worker's NO_PROXY
 * environment variable both apply.
 */
export function bypassesProxy(url: URL, nodeList: readonly string[] | undefined, envList: string | undefined): boolean {
  const host = bareHostname(url.hostname).toLowerCase();
  const port = url.port || '443';
  const entries = [...(nodeList ?? []), ...(envList ? envList.split(/[\s,]+/) : [])];
  return entries.some((raw) => {
    const entry = raw.trim().toLowerCase();
    if (entry === '') return false;
    if (entry === '*') return true;
    // `host:port`, `[v6]:port`; a bare IPv6 address has several colons and no port.
    const bareV6 = !entry.startsWith('[') && entry.indexOf(':') !== entry.lastIndexOf(':');
    const m = bareV6 ? undefined : /^(.*?)(?::(\d+))?$/.exec(entry);
    const name = bareHostname((m?.[1] ?? entry).replace(/^\*?\./, ''));
    if (m?.[2] !== undefined && m[2] !== port) return false;
    return host === name || host.endsWith(`.${name}`);
  });
}
