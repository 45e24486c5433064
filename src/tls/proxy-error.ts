import { ProxyError, errorCode, errorMessage } from '../errors.js';
import { proxyCredentials } from './endpoint.js';
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
