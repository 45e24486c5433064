import type { ErrorCode } from '../errors.js';
import { withoutRuns } from '../secret-runs.js';

/** What a proxy answered to a CONNECT it did not grant, as far as messages use it. */
export interface ProxyAnswer {
  status: number;
  /** The reason phrase of the status line, as the proxy sent it. */
  statusText: string;
  /** Every Proxy-Authenticate value (a 407's offered schemes). */
  challenges: readonly string[];
  /** squid's `X-Squid-Error` (e.g. `ERR_CONNECT_FAIL 111`): why squid refused. */
  squidError: string | undefined;
  /** Whether the CONNECT carried Proxy-Authorization (proxy.url has credentials). */
  credentialsSent: boolean;
  /** The CONNECT target, `host:port`. */
  target: string;
}

/** How a refusal reads: our code, message and what to do. */
export interface Refusal {
  code: ErrorCode;
  message: string;
  hint: string;
}

/** Longest proxy-provided text quoted in a message: the proxy is not ours, its text is not trusted. */
const MAX_QUOTED = 80;
const MAX_SCHEMES = 6;

/** A run of this many characters of a credential in proxy-provided text is masked: a proxy may echo them cut short. */
const MASKED_RUN_CHARS = 8;
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/**
 * Proxy-provided text made safe to quote: any of `secrets` (the proxy credentials) is masked, and
 * any run of MASKED_RUN_CHARS characters of one, should a proxy echo them whole or in part (with
 * its control characters as written or as spaces); then control characters (C0, DEL, C1, bidi
 * overrides) become spaces, runs of space shrink to one, and the result is cut at MAX_QUOTED characters.
 */
export function quoted(text: string, secrets: readonly string[] = []): string {
  let clean = text;
  for (const secret of secrets) {
    clean = withoutRuns(clean, secret, MASKED_RUN_CHARS, '***');
    const spaced = secret.replace(CONTROLS, ' ');
    if (spaced !== secret) clean = withoutRuns(clean, spaced, MASKED_RUN_CHARS, '***');
  }
  clean = clean.replace(CONTROLS, ' ').replace(/\s+/g, ' ').trim();
  return clean.length > MAX_QUOTED ? `${clean.slice(0, MAX_QUOTED - 1)}…` : clean;
}

/**
 * The authentication schemes of Proxy-Authenticate values (RFC 9110 §11.6.1): each challenge
 * starts with a scheme token; `name=value` parameters and quoted strings (a realm may hold
 * commas) are skipped. Distinct, in the proxy's order.
 */
export function offeredSchemes(challenges: readonly string[]): string[] {
  const schemes: string[] = [];
  for (const value of challenges) {
    for (const part of value.replace(/"(?:[^"\\]|\\.)*"/g, '""').split(',')) {
      const token = /^\s*([A-Za-z][\w!#$%&'*+.^`|~-]*)(?:\s|$)/.exec(part)?.[1];
      if (token && !/^\s*[\w!#$%&'*+.^`|~-]+\s*=/.test(part) && !schemes.some((s) => s.toLowerCase() === token.toLowerCase())) schemes.push(token);
    }
  }
  return schemes.slice(0, MAX_SCHEMES);
}

const BASIC_ONLY_HINT =
  'svcnode supports Basic proxy authentication only: ask the proxy team for Basic credentials or for an egress rule that allows this worker by its IP address without authentication, or run a local relay that authenticates to this proxy for svcnode (CNTLM for NTLM, Px for NTLM and Kerberos) and point proxy.url at the relay';

/** A 407: which credentials the proxy wants, and whether ours were missing, wrong or of a scheme we cannot speak. */
function authRefusal(answer: ProxyAnswer, proxy: string, secrets: readonly string[]): Refusal {
  const schemes = offeredSchemes(answer.challenges).map((s) => quoted(s, secrets));
  const offered = schemes.length > 0 ? `it offers ${schemes.join(', ')} (Proxy-Authenticate)` : 'it sent no Proxy-Authenticate header naming a scheme';
  const head = `the proxy ${proxy} answered 407 to CONNECT ${answer.target}`;
  if (schemes.length > 0 && !schemes.some((s) => s.toLowerCase() === 'basic')) {
    const ours = answer.credentialsSent ? 'the Basic credentials of proxy.url were not accepted' : 'proxy.url has no credentials';
    return { code: 'SVCNODE_PROXY_AUTH_SCHEME', message: `${head}: ${offered}, not Basic; ${ours}`, hint: BASIC_ONLY_HINT };
  }
  if (!answer.credentialsSent) {
    return {
      code: 'SVCNODE_PROXY_AUTH_REQUIRED',
      message: `${head}: the proxy requires authentication and proxy.url has no credentials; ${offered}`,
      hint: 'put the proxy user and password in proxy.url (http://user:password@proxy:port, percent-encoded), or ask the proxy team to allow this worker by its IP address',
    };
  }
  return {
    code: 'SVCNODE_PROXY_AUTH',
    message: `${head}: it rejected the user and password in proxy.url; ${offered}`,
    hint: 'check the proxy user and password in proxy.url (percent-encode @ : / # ? % as %40 %3A %2F %23 %3F %25) and ask the proxy team whether the account is locked or expired',
  };
}

/** squid's `connect(2)` errno in ERR_CONNECT_FAIL, in words. */
const ERRNO: Record<string, string> = { '110': 'timed out', '111': 'connection refused', '113': 'no route to host', '101': 'network unreachable' };

const UNREACHABLE_HINT = 'check the host and port in request.url and that the backend is up; if they are right, ask the network team to allow connections from the proxy to this host and port';
const UNRESOLVED_HINT = 'check the host name in request.url: the proxy resolves it with its own DNS, which may not know internal names; ask the proxy team, or list the host in proxy.noProxy if this worker reaches it directly';
const POLICY_HINT = 'ask the proxy team to allow CONNECT to this host and port for this worker (many proxies allow CONNECT to port 443 only)';

/** Any other refusal, told by squid's error name when there is one, else by the status line. */
function otherRefusal(answer: ProxyAnswer, proxy: string, secrets: readonly string[]): Refusal {
  const statusLine = `HTTP ${answer.status} ${quoted(answer.statusText, secrets)}`.trim();
  const said = answer.squidError ? `${statusLine}; X-Squid-Error: ${quoted(answer.squidError, secrets)}` : statusLine;
  const head = `the proxy ${proxy}`;
  const [name, errno] = (answer.squidError ?? '').trim().split(/\s+/);
  const refused = (why: string, hint: string): Refusal => ({ code: 'SVCNODE_PROXY_REFUSED', message: `${head} ${why} (${said})`, hint });
  switch (name) {
    case 'ERR_ACCESS_DENIED':
      return refused(`refused CONNECT to ${answer.target} by its access policy`, POLICY_HINT);
    case 'ERR_DNS_FAIL':
      return refused(`could not resolve the host name of ${answer.target}`, UNRESOLVED_HINT);
    case 'ERR_CANNOT_FORWARD':
      return refused(`found no address or route for ${answer.target}; most often its host name does not resolve at the proxy`, `${UNRESOLVED_HINT}; if it resolves, the proxy has no route to it: ask the proxy team`);
    case 'ERR_CONNECT_FAIL':
      return refused(`could not connect to ${answer.target}${errno && ERRNO[errno] ? `: ${ERRNO[errno]}` : ''}`, UNREACHABLE_HINT);
    case 'ERR_READ_TIMEOUT':
    case 'ERR_LIFETIME_EXP':
      return refused(`got no answer from ${answer.target} in time`, UNREACHABLE_HINT);
    default:
  }
  if (answer.status === 403) return refused(`refused CONNECT to ${answer.target}, most likely by its access policy`, POLICY_HINT);
  if (answer.status === 502 || answer.status === 503 || answer.status === 504) return refused(`could not reach ${answer.target}`, UNREACHABLE_HINT);
  return refused(`refused to open a tunnel to ${answer.target}`, 'check that the proxy allows CONNECT to this host and port, and ask the proxy team what its answer means');
}

/** How a CONNECT the proxy did not grant reads in a Result. `secrets` are masked in anything quoted. */
export function describeRefusal(answer: ProxyAnswer, proxy: string, secrets: readonly string[]): Refusal {
  return answer.status === 407 ? authRefusal(answer, proxy, secrets) : otherRefusal(answer, proxy, secrets);
}
