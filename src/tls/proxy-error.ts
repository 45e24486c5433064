import { ProxyError, errorCode, errorMessage } from '../errors.js';
import { proxyCredentials } from './endpoint.js';
import { effectiveCode, readableMessage } from './openssl-error.js';
import { describeRefusal, type ProxyAnswer } from './proxy-refusal.js';

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

/** The forms proxy.url's credentials could take in proxy-provided text: masked wherever it is quoted. */
function credentialForms(proxyUrl: string): string[] {
  try {
    const credentials = proxyCredentials(proxyUrl);
    if (!credentials) return [];
    const { pair, password } = credentials;
    return [Buffer.from(pair).toString('base64'), pair, password, new URL(proxyUrl).password].filter((s) => s.length > 0);
  } catch {
    return [];
  }
}

/** How far the hop to the proxy got: its host name not looked up yet, its port not connected, or CONNECT sent and not answered. */
export type ProxyStage = 'lookup' | 'connect' | 'answer';

/**
 * The tunnel not open within connectMs, said by how far it got. A proxy that took the connection
 * but has not answered CONNECT is most often working: still resolving the backend's name or
 * connecting to it, with timeouts of its own longer than ours (squid's are minutes).
 */
function proxyTimeout(raw: Error, proxy: string, connectMs: number): ProxyError {
  const { stage, target = 'the backend' } = raw as Error & { stage?: ProxyStage; target?: string };
  if (stage === 'lookup') {
    return new ProxyError('SVCNODE_PROXY_TIMEOUT', `the host name lookup of the proxy ${proxy} did not finish within ${connectMs} ms: no connection to it was attempted`, { cause: raw, hint: 'the DNS server did not answer in time for the proxy\'s name: check the resolver in /etc/resolv.conf, or write the proxy\'s address in proxy.url' });
  }
  if (stage === 'connect') {
    return new ProxyError('SVCNODE_PROXY_TIMEOUT', `the proxy ${proxy} did not take the connection within ${connectMs} ms`, { cause: raw, hint: 'check that the host and port in proxy.url are reachable from this machine (firewall, routing), or raise timeouts.connectMs' });
  }
  return new ProxyError('SVCNODE_PROXY_TIMEOUT', `the proxy ${proxy} took the connection but did not answer CONNECT within ${connectMs} ms`, {
    cause: raw,
    hint: `a working proxy answers this late while it still resolves or connects to ${target} (its own timeouts are longer than timeouts.connectMs): check the proxy's log for ${target} and that the backend is reachable from the proxy; a port where no HTTP proxy listens can stay silent the same way`,
  });
}

/**
 * Turn an error of a CONNECT into a coded ProxyError (the raw error as cause): refused or
 * unreachable proxy, TLS to an https:// proxy, no answer in time, or an answer other than 200,
 * told from `answer` (407 and its offered schemes, squid's error name, the status line).
 */
export function proxyError(raw: Error, proxyUrl: string, connectMs: number, answer?: ProxyAnswer): ProxyError {
  const proxy = shown(proxyUrl);
  const secrets = credentialForms(proxyUrl);
  const status = answer?.status ?? Number(/^Bad response: (\d{3})$/.exec(raw.message)?.[1] ?? Number.NaN);
  if (!Number.isNaN(status)) {
    const said = answer ?? { status, statusText: '', challenges: [], squidError: undefined, credentialsSent: secrets.length > 0, target: 'the backend' };
    const { code, message, hint } = describeRefusal(said, proxy, secrets);
    return new ProxyError(code, message, { cause: raw, status, hint });
  }
  if (raw.message === 'Proxy timeout') return proxyTimeout(raw, proxy, connectMs);
  const text = readableMessage(errorMessage(raw).trim());
  const code = effectiveCode(errorCode(raw) ?? '', errorMessage(raw));
  // node:http's parser could not read the answer to CONNECT: what listens there is no HTTP proxy.
  if (code.startsWith('HPE_')) {
    return new ProxyError('SVCNODE_PROXY_BAD_RESPONSE', `${proxy} answered CONNECT with something that is not HTTP (${code}: ${text})`, { cause: raw, hint: 'proxy.url names a port where no HTTP proxy listens: check its host and port, and its scheme (https:// for a proxy that speaks TLS)' });
  }
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG') {
    return new ProxyError('SVCNODE_PROXY_TLS', `the proxy ${proxy} does not speak TLS on this port (${text}): it answered the TLS handshake in plaintext`, {
      cause: raw,
      hint: 'proxy.url says https://, but most proxies take CONNECT in plaintext (the tunnel to the backend is TLS all the same): write http:// in proxy.url, or the port of the proxy\'s TLS listener',
    });
  }
  if (TLS_FAILURE.test(code)) return new ProxyError('SVCNODE_PROXY_TLS', `TLS to the proxy ${proxy} failed: ${code}: ${text}`, { cause: raw, hint: proxyTlsHint(code) });
  // The connection stood, and the proxy closed it without a word: what a TLS port does with a plaintext CONNECT.
  if (code === 'ECONNRESET' && /socket hang up/.test(text)) {
    return new ProxyError('SVCNODE_PROXY_UNREACHABLE', `the proxy ${proxy} closed the connection without answering CONNECT`, {
      cause: raw,
      hint: proxyUrl.startsWith('http:') ? 'a port that speaks TLS closes like this on a plaintext CONNECT: if the proxy takes TLS, write https:// in proxy.url; otherwise the proxy\'s log says why it hung up' : 'the proxy\'s log says why it hung up; check that proxy.url names its CONNECT port',
    });
  }
  return new ProxyError('SVCNODE_PROXY_UNREACHABLE', `the proxy ${proxy} cannot be reached: ${code ? `${code}: ` : ''}${text}`, { cause: raw, hint: 'check proxy.url (host and port) and that the proxy is up and reachable from this machine; a proxy that speaks TLS needs https:// in proxy.url' });
}

/** What to do about the proxy's own certificate, by what was wrong with it. */
function proxyTlsHint(code: string): string {
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return "the proxy's own certificate is out of date: its operators must renew it (proxy.tls.ca is not the problem; this is not about the backend's certificate)";
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID' || code === 'HOSTNAME_MISMATCH') return "the proxy's own certificate does not name the host written in proxy.url: write the proxy's host as its certificate names it (this is not about the backend's certificate)";
  return "the proxy's own certificate is not trusted or its TLS setup does not match: list the proxy's CA in proxy.tls.ca (this is not about the backend's certificate or trust.ca)";
}
