import { ProxyError, errorCode, errorMessage } from '../errors.js';

/** Codes of a TLS handshake with an `https://` proxy that failed (its certificate, versions, alerts). */
const TLS_FAILURE = /^(?:ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_|SELF_SIGNED_|DEPTH_ZERO_|INVALID_|HOSTNAME_MISMATCH$|UNSPECIFIED$)/;
/** CONNECT answers that a retry may get past: the proxy could not reach the backend for now. */
export const TRANSIENT_PROXY_STATUS: ReadonlySet<number> = new Set([502, 503, 504]);

/** The proxy's address without its credentials, for messages. */
function shown(proxyUrl: string): string {
  try {
    return new URL(proxyUrl).origin;
  } catch {
    return 'the proxy';
  }
}

/**
 * Turn an error of hpagent's CONNECT into a coded ProxyError (the raw error as cause): refused
 * or unreachable proxy, TLS to an https:// proxy, 407, another refusal, or no answer in time.
 */
export function proxyError(raw: Error, proxyUrl: string, connectMs: number): ProxyError {
  const proxy = shown(proxyUrl);
  const status = /^Bad response: (\d{3})$/.exec(raw.message)?.[1];
  if (status === '407') {
    return new ProxyError('SVCNODE_PROXY_AUTH', `the proxy ${proxy} answered 407 to CONNECT: its credentials are missing or wrong`, { cause: raw, status: 407, hint: 'put the proxy credentials in proxy.url (http://user:pass@proxy:port), percent-encoded' });
  }
  if (status !== undefined) {
    const n = Number(status);
    return new ProxyError('SVCNODE_PROXY_REFUSED', `the proxy ${proxy} refused to open a tunnel (HTTP ${status})`, {
      cause: raw,
      status: n,
      hint: TRANSIENT_PROXY_STATUS.has(n) ? 'the proxy could not reach the backend: check the backend host and port, and the proxy\'s own connectivity' : 'check that the proxy allows CONNECT to this host and port',
    });
  }
  if (raw.message === 'Proxy timeout') {
    return new ProxyError('SVCNODE_PROXY_TIMEOUT', `the proxy ${proxy} did not open the tunnel within ${connectMs} ms`, { cause: raw, hint: 'check that proxy.url points at a working CONNECT proxy, or raise timeouts.connectMs' });
  }
  const code = errorCode(raw) ?? '';
  // node:http's parser could not read the answer to CONNECT: what listens there is no HTTP proxy.
  if (code.startsWith('HPE_')) {
    return new ProxyError('SVCNODE_PROXY_BAD_RESPONSE', `${proxy} answered CONNECT with something that is not HTTP (${code}: ${errorMessage(raw)})`, { cause: raw, hint: 'proxy.url names a port where no HTTP proxy listens: check its host and port, and its scheme (https:// for a proxy that speaks TLS)' });
  }
  if (TLS_FAILURE.test(code)) {
    return new ProxyError('SVCNODE_PROXY_TLS', `TLS to the proxy ${proxy} failed: ${code}: ${errorMessage(raw)}`, {
      cause: raw,
      hint: 'the proxy\'s own certificate is not trusted or its TLS setup does not match: list the proxy\'s CA in proxy.tls.ca (this is not about the backend\'s certificate or trust.ca)',
    });
  }
  return new ProxyError('SVCNODE_PROXY_UNREACHABLE', `the proxy ${proxy} cannot be reached: ${code ? `${code}: ` : ''}${errorMessage(raw)}`, { cause: raw, hint: 'check proxy.url (host and port) and that the proxy is up and reachable from this machine; a proxy that speaks TLS needs https:// in proxy.url' });
}
