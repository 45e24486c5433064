import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { InvalidInputError, SvcnodeError } from '../../src/errors.js';
import { FAILURE_CATEGORIES, type FailureCategory } from '../../src/failures/categories.js';
import { CLIENT_VERDICT_WINDOW_MS, RECENTLY_ANSWERED_MS, classifyError, classifyHttpStatus, type ClassifyContext } from '../../src/failures/classify.js';
import { proxyError } from '../../src/tls/proxy-error.js';
import { lookupTimeout, newProbe, type ChainEntry, type ConnectionProbe } from '../../src/tls/probe.js';
import { unusedPort } from '../helpers/servers.js';

const WITH_CLIENT: ClassifyContext = { host: 'api.bank.example:443', profileName: 'bank', clientSubject: 'CN=svcnode-bot', probe: undefined, proxy: false };
const NO_CLIENT: ClassifyContext = { ...WITH_CLIENT, clientSubject: undefined };
/** No client certificate, on a connection whose server asked for one. */
const NO_CLIENT_ASKED: ClassifyContext = { ...NO_CLIENT, probe: { ...newProbe('direct'), certificateRequested: true } };

function err(code: string | undefined, message = `error ${code ?? ''}`): Error {
  return Object.assign(new Error(message), code === undefined ? {} : { code });
}

function probe(p: Partial<ConnectionProbe>): ConnectionProbe {
  return { via: 'direct', startedAt: 0, connectedAt: 1, sessionReused: false, keylog: false, responses: 0, ...p };
}

function category(error: unknown, ctx: ClassifyContext = WITH_CLIENT): FailureCategory {
  return classifyError(error, ctx).category;
}

/** An OpenSSL error as Node renders it in err.message. */
const openssl = (reason: string, alert?: number): string =>
  `C0B7E0F0A37F0000:error:0A000418:SSL routines:ssl3_read_bytes:${reason}:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:1605:${alert === undefined ? '' : `SSL alert number ${alert}`}\n`;

describe('server certificate codes (verified by us)', () => {
  it.each([
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'server_cert_untrusted'],
    ['UNABLE_TO_GET_ISSUER_CERT', 'server_cert_untrusted'],
    ['UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'server_cert_untrusted'],
    ['SELF_SIGNED_CERT_IN_CHAIN', 'server_cert_untrusted'],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'server_cert_untrusted'],
    ['CERT_SIGNATURE_FAILURE', 'server_cert_untrusted'],
    ['INVALID_PURPOSE', 'server_cert_untrusted'],
    ['CERT_REVOKED', 'server_cert_revoked'],
    ['CERT_HAS_EXPIRED', 'server_cert_expired'],
    ['CERT_NOT_YET_VALID', 'server_cert_expired'],
    ['ERR_TLS_CERT_ALTNAME_INVALID', 'server_hostname_mismatch'],
    ['SVCNODE_PIN_MISMATCH', 'server_identity_mismatch'],
    ['SVCNODE_SUBJECT_MISMATCH', 'server_identity_mismatch'],
  ] as const)('%s → %s (with or without a client certificate)', (code, expected) => {
    expect(category(err(code))).toBe(expected);
    expect(category(err(code), NO_CLIENT)).toBe(expected);
    expect(classifyError(err(code), WITH_CLIENT).code).toBe(code);
  });

  it('a leaf-only chain gets a hint naming the missing intermediate', () => {
    const leaf: ChainEntry = { subject: 'CN=api.bank.example', issuer: 'CN=Bank Issuing CA 2, O=Bank', validFrom: '', validTo: '', fingerprint256: 'AA' };
    const f = classifyError(err('UNABLE_TO_VERIFY_LEAF_SIGNATURE'), { ...WITH_CLIENT, serverChain: [leaf] });
    expect(f.category).toBe('server_cert_untrusted');
    expect(f.hint).toContain('CN=Bank Issuing CA 2, O=Bank');
  });
});

describe('alerts received from the server (about our certificate)', () => {
  it.each([
    ['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'client_cert_rejected'],
    ['ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', 'client_cert_rejected'],
    ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN', 'client_cert_rejected'],
    ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED', 'client_cert_rejected'],
    ['ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE', 'client_cert_rejected'],
    ['ERR_SSL_TLSV1_ALERT_ACCESS_DENIED', 'client_cert_rejected'],
    ['ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR', 'client_cert_rejected'],
    ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED', 'client_cert_expired'],
  ] as const)('%s → %s', (code, expected) => {
    expect(category(err(code))).toBe(expected);
  });

  it('certificate_required (116): required without a client certificate, rejected with one', () => {
    expect(category(err('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED'), NO_CLIENT)).toBe('client_cert_required');
    expect(category(err('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED'), WITH_CLIENT)).toBe('client_cert_rejected');
  });

  it('handshake_failure (40) is ambiguous: past key exchange it is about the certificate, before it a cipher/version problem', () => {
    const code = 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE';
    expect(category(err(code), { ...NO_CLIENT, probe: probe({ keylog: true }) })).toBe('client_cert_required');
    expect(category(err(code), { ...WITH_CLIENT, probe: probe({ keylog: true }) })).toBe('client_cert_rejected');
    expect(category(err(code), { ...WITH_CLIENT, probe: probe({ keylog: false }) })).toBe('protocol_mismatch');
    expect(category(err(code), NO_CLIENT)).toBe('protocol_mismatch');
  });

  it('EPROTO with "SSL alert number 48" in the message is an unknown-CA alert', () => {
    const f = classifyError(err('EPROTO', openssl('tlsv1 alert unknown ca', 48)), WITH_CLIENT);
    expect(f.category).toBe('client_cert_rejected');
    expect(f.code).toBe('ERR_SSL_TLSV1_ALERT_UNKNOWN_CA');
    expect(f.message).not.toContain('deps/openssl'); // OpenSSL's source path is noise for operators
  });

  it.each([
    [116, NO_CLIENT, 'client_cert_required'],
    [45, WITH_CLIENT, 'client_cert_expired'],
    [42, WITH_CLIENT, 'client_cert_rejected'],
    [70, WITH_CLIENT, 'protocol_mismatch'],
  ] as const)('EPROTO with SSL alert number %i', (alert, ctx, expected) => {
    expect(category(err('EPROTO', openssl('some alert', alert)), ctx)).toBe(expected);
  });

  it('EPROTO from a plain HTTP port ("wrong version number") is a protocol mismatch', () => {
    const f = classifyError(err('EPROTO', '80DC8EB4CF7F0000:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../deps/openssl/openssl/ssl/record/ssl3_record.c:350:\n'), WITH_CLIENT);
    expect(f.category).toBe('protocol_mismatch');
    expect(f.code).toBe('ERR_SSL_WRONG_VERSION_NUMBER');
  });

  it('EPROTO without any OpenSSL detail is a network failure', () => {
    expect(category(err('EPROTO', 'write EPROTO'))).toBe('connect_failed');
  });
});

describe('protocol', () => {
  it.each(['ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', 'ERR_SSL_UNSUPPORTED_PROTOCOL', 'ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_PACKET_LENGTH_TOO_LONG', 'ERR_SSL_NO_CIPHERS_AVAILABLE'])('%s → protocol_mismatch', (code) => {
    expect(category(err(code))).toBe('protocol_mismatch');
  });
});

describe('closes and resets (TLS 1.3 post-handshake rejection)', () => {
  it('TLS 1.3: a close right after the handshake with no response byte: rejected (with a client cert) or required (without)', () => {
    const after = probe({ secureAt: 2, closedAt: 4, protocol: 'TLSv1.3', keylog: true, keylogLabel: 'SERVER_HANDSHAKE_TRAFFIC_SECRET' });
    expect(category(err('ECONNRESET', 'socket hang up'), { ...WITH_CLIENT, probe: after })).toBe('client_cert_rejected');
    expect(category(err('ECONNRESET', 'socket hang up'), { ...NO_CLIENT, probe: after })).toBe('client_cert_required');
  });

  it('TLS 1.2: reset after our flight was sent (CLIENT_RANDOM derived) is a rejection', () => {
    const flight = probe({ keylog: true, keylogLabel: 'CLIENT_RANDOM' });
    expect(category(err('ECONNRESET'), { ...WITH_CLIENT, probe: flight })).toBe('client_cert_rejected');
  });

  it('a reset before our certificate could be judged, or after a response, is a network failure', () => {
    expect(category(err('ECONNRESET'))).toBe('connect_failed');
    expect(category(err('ECONNRESET'), { ...WITH_CLIENT, probe: probe({}) })).toBe('connect_failed');
    expect(category(err('ECONNRESET'), { ...WITH_CLIENT, probe: probe({ keylog: true, keylogLabel: 'SERVER_HANDSHAKE_TRAFFIC_SECRET' }) })).toBe('connect_failed');
    expect(category(err('ECONNRESET'), { ...WITH_CLIENT, probe: probe({ secureAt: 2, closedAt: 4, protocol: 'TLSv1.3', responses: 1 }) })).toBe('connect_failed');
  });

  it('a close long after the handshake (backend restart, idle close), on TLS 1.2, or on a resumed session is a network failure', () => {
    const late = probe({ secureAt: 2, closedAt: 2 + CLIENT_VERDICT_WINDOW_MS + 1, protocol: 'TLSv1.3' });
    expect(category(err('ECONNRESET', 'socket hang up'), { ...WITH_CLIENT, probe: late })).toBe('connect_failed');
    expect(category(err('ECONNRESET', 'socket hang up'), { ...WITH_CLIENT, probe: probe({ secureAt: 2, closedAt: 3, protocol: 'TLSv1.2' }) })).toBe('connect_failed');
    expect(category(err('ECONNRESET', 'socket hang up'), { ...WITH_CLIENT, probe: probe({ secureAt: 2, closedAt: 3, protocol: 'TLSv1.3', sessionReused: true }) })).toBe('connect_failed');
    expect(category(err('ECONNRESET', 'socket hang up'), { ...WITH_CLIENT, probe: probe({ secureAt: 2, closedAt: 3, protocol: 'TLSv1.3' }) })).toBe('client_cert_rejected');
  });

  it('a close at the end of the handshake within a minute of an answer to the same identity on this origin is a dropped connection (retried), not a verdict', () => {
    const at = 100_000;
    const recent = probe({ secureAt: at, closedAt: at + 2, protocol: 'TLSv1.3', agent: { answeredAt: at - 5_000 } });
    const f = classifyError(err('ECONNRESET', 'socket hang up'), { ...WITH_CLIENT, probe: recent });
    expect(f).toMatchObject({ category: 'connect_failed', code: 'ECONNRESET' });
    expect(f.message).toContain('5 s after it answered a call with the same client certificate: most likely it dropped its connections');
    const stale = probe({ secureAt: at, closedAt: at + 2, protocol: 'TLSv1.3', agent: { answeredAt: at + 2 - RECENTLY_ANSWERED_MS - 1 } });
    expect(category(err('ECONNRESET', 'socket hang up'), { ...WITH_CLIENT, probe: stale })).toBe('client_cert_rejected');
    const flight = probe({ keylog: true, keylogLabel: 'CLIENT_RANDOM', closedAt: at, agent: { answeredAt: at - 1_000 } });
    expect(category(err('ECONNRESET'), { ...WITH_CLIENT, probe: flight })).toBe('connect_failed');
  });
});

describe('network, proxy and timeouts', () => {
  it.each(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE'])('%s → connect_failed', (code) => {
    expect(category(err(code))).toBe('connect_failed');
  });

  it.each([
    ['EMFILE', 'ulimit -n'],
    ['ENFILE', 'fs.file-max'],
    ['ENOBUFS', 'buffer space'],
    ['EADDRNOTAVAIL', 'ephemeral ports'],
  ])('%s is this machine out of a resource, not the backend: connect_failed, phase connect, a hint about this machine', (code, words) => {
    const f = classifyError(err(code, `connect ${code} 10.0.0.5:443 - Local (undefined:undefined)`), WITH_CLIENT);
    expect(f).toMatchObject({ category: 'connect_failed', code, phase: 'connect', message: `api.bank.example:443: connect ${code} 10.0.0.5:443` });
    expect(f.hint).toContain(words);
    expect(f.hint).not.toContain('backend is up');
  });

  it('"constructor" and other Object.prototype names are no known code', () => {
    expect(classifyError(err('constructor'), WITH_CLIENT).code).toBe('SVCNODE_UNEXPECTED_ERROR');
  });

  it('an unknown error gets a code of its own (SVCNODE_UNEXPECTED_ERROR, raw code in the message), never a crash', () => {
    for (const e of [new Error('something odd'), 'a string', undefined, null, err('ERR_SOMETHING_NEW', 'new')]) {
      const f = classifyError(e, WITH_CLIENT);
      expect(f.code).toBe('SVCNODE_UNEXPECTED_ERROR');
      expect(f.category).toBe('connect_failed');
    }
    expect(classifyError(err('ERR_SOMETHING_NEW', 'new'), WITH_CLIENT).message).toContain('ERR_SOMETHING_NEW');
  });

  it('proxy "Bad response: 407" → connect_failed PROXY_407 in phase proxy; other statuses likewise', () => {
    const ctx = { ...WITH_CLIENT, proxy: true };
    const f = classifyError(proxyError(new Error('Bad response: 407'), 'http://u:p@proxy:3128', 500), ctx);
    expect(f).toMatchObject({ category: 'connect_failed', code: 'PROXY_407', phase: 'proxy' });
    expect(f.message).not.toContain('u:p');
    expect(classifyError(proxyError(new Error('Bad response: 502'), 'http://proxy:3128', 500), ctx).code).toBe('PROXY_502');
  });

  it.each([
    ['UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'SVCNODE_PROXY_TLS'],
    ['SELF_SIGNED_CERT_IN_CHAIN', 'SVCNODE_PROXY_TLS'],
    ['ERR_TLS_CERT_ALTNAME_INVALID', 'SVCNODE_PROXY_TLS'],
    ['ERR_SSL_WRONG_VERSION_NUMBER', 'SVCNODE_PROXY_TLS'],
    ['ECONNREFUSED', 'SVCNODE_PROXY_UNREACHABLE'],
    ['HPE_INVALID_CONSTANT', 'SVCNODE_PROXY_BAD_RESPONSE'],
  ])('a %s on the hop to the proxy is %s, phase proxy, never a server or client category', (raw, code) => {
    const f = classifyError(proxyError(err(raw), 'https://proxy:443', 500), { ...WITH_CLIENT, proxy: true });
    expect(f).toMatchObject({ category: 'connect_failed', code, phase: 'proxy' });
  });

  it.each([
    ['our phase timer', new SvcnodeError('SVCNODE_TIMEOUT', 'TLS handshake did not finish within 500 ms')],
    ['got ETIMEDOUT', err('ETIMEDOUT', 'Timeout awaiting response for 500ms')],
    ['CONNECT timed out (Proxy timeout)', proxyError(new Error('Proxy timeout'), 'http://proxy:3128', 500)],
    ['AbortSignal.timeout', new DOMException('The operation was aborted due to timeout', 'TimeoutError')],
  ])('%s → timeout', (_label, error) => {
    expect(category(error, { ...WITH_CLIENT, proxy: true })).toBe('timeout');
  });

  it('invalid input stays invalid input with its own code', () => {
    const f = classifyError(new InvalidInputError('SVCNODE_TEMPLATE', '/request/url: context variable "context.id" is missing', { hint: 'pass it' }), WITH_CLIENT);
    expect(f).toMatchObject({ category: 'invalid_input', code: 'SVCNODE_TEMPLATE', phase: 'input', hint: 'pass it' });
  });
});

describe('HTTP status', () => {
  it.each([
    [404, '', WITH_CLIENT, 'http_status'],
    [500, '', WITH_CLIENT, 'http_status'],
    [401, '', WITH_CLIENT, 'http_status'],
    [496, '', NO_CLIENT, 'client_cert_required'],
    [400, '<html>400 No required SSL certificate was sent</html>', NO_CLIENT, 'client_cert_required'],
    [495, '', WITH_CLIENT, 'client_cert_rejected'],
    [400, '<html>400 The SSL certificate error</html>', WITH_CLIENT, 'client_cert_rejected'],
    [400, '{"error":"bad request"}', WITH_CLIENT, 'http_status'],
    // A server that asks for a certificate optionally (haproxy verify optional): a 403 without one
    // is most likely for the certificate; a 401 is HTTP authentication (a bearer token, Basic).
    [403, '', NO_CLIENT_ASKED, 'client_cert_required'],
    [401, '', NO_CLIENT_ASKED, 'http_status'],
    [404, '', NO_CLIENT_ASKED, 'http_status'],
  ] as const)('%i %j → %s', (status, body, ctx, expected) => {
    const f = classifyHttpStatus(status, body, ctx);
    expect(f.category).toBe(expected);
    expect(f.code).toBe(`HTTP_${status}`);
  });
});

describe('purity', () => {
  it('the same input gives the same Failure, the phase is the category\'s, and the error is not modified', () => {
    const inputs: Array<[unknown, ClassifyContext]> = [
      [err('CERT_HAS_EXPIRED'), WITH_CLIENT],
      [err('EPROTO', openssl('tlsv1 alert unknown ca', 48)), WITH_CLIENT],
      [err('ECONNREFUSED'), NO_CLIENT],
      [err('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED'), NO_CLIENT],
    ];
    for (const [error, ctx] of inputs) {
      const before = JSON.stringify(error, Object.getOwnPropertyNames(error));
      const a = classifyError(error, ctx);
      const b = classifyError(error, ctx);
      expect(a).toEqual(b);
      expect(a.phase).toBe(FAILURE_CATEGORIES[a.category].phase);
      expect(JSON.stringify(error, Object.getOwnPropertyNames(error))).toBe(before);
    }
  });
});

describe('name lookup and several addresses', () => {
  /** The error Node gives for a host name whose `addresses` all fail on `port` (autoSelectFamily, a real connection attempt to each). */
  function connectToAll(addresses: string[], port: number): Promise<unknown> {
    return new Promise((resolve) => {
      const socket = net.connect({ host: 'api.bank.example', port, autoSelectFamily: true, lookup: (_host, _options, callback) => (callback as (e: null, a: { address: string; family: number }[]) => void)(null, addresses.map((address) => ({ address, family: 4 }))) });
      socket.on('error', resolve);
    });
  }

  it('every address refusing: the message lists each, ECONNREFUSED (before: "api.bank.example:443: " with nothing after it)', async () => {
    const port = await unusedPort();
    const error = await connectToAll(['127.0.0.1', '127.0.0.2'], port);
    expect(error).toBeInstanceOf(AggregateError);
    const f = classifyError(error, WITH_CLIENT);
    expect(f).toMatchObject({ category: 'connect_failed', code: 'ECONNREFUSED', hint: 'check that the backend is up and reachable from this machine (host, port, firewall, proxy)' });
    expect(f.message).toBe(`api.bank.example:443: no address of the host took the connection: connect ECONNREFUSED 127.0.0.1:${port}; connect ECONNREFUSED 127.0.0.2:${port}`);
  });

  it("every address out of reach within Node's 250 ms each: not told to raise the node's timeouts, which do not apply", () => {
    const error = Object.assign(new AggregateError([err('ETIMEDOUT', 'connect ETIMEDOUT 127.0.0.1:443'), err('ETIMEDOUT', 'connect ETIMEDOUT 127.0.0.2:443')], ''), { code: 'ETIMEDOUT' });
    const f = classifyError(error, WITH_CLIENT);
    expect(f).toMatchObject({ category: 'timeout', code: 'ETIMEDOUT', message: 'api.bank.example:443: no address of the host took the connection: connect ETIMEDOUT 127.0.0.1:443; connect ETIMEDOUT 127.0.0.2:443' });
    expect(f.hint).toMatch(/^no address of the host answered the connection attempt \(each is tried for 250 ms/);
  });

  it('EAI_AGAIN (the DNS server failed) is not told to check the URL as a name that does not exist is', () => {
    expect(classifyError(err('EAI_AGAIN', 'getaddrinfo EAI_AGAIN api.bank.example'), WITH_CLIENT)).toMatchObject({ category: 'connect_failed', hint: expect.stringMatching(/^the DNS server failed to answer for this name .*\/etc\/resolv\.conf/) as unknown });
    expect(classifyError(err('ENOTFOUND', 'getaddrinfo ENOTFOUND api.bank.example'), WITH_CLIENT).hint).toBe('the host name does not resolve: check the URL and DNS');
  });

  it('our lookup timeout keeps its own message and DNS hint', () => {
    const f = classifyError(lookupTimeout(3_000), WITH_CLIENT);
    expect(f).toMatchObject({ category: 'timeout', code: 'SVCNODE_TIMEOUT', message: 'api.bank.example:443: the host name lookup did not finish within 3000 ms (timeouts.connectMs): no connection was attempted' });
    expect(f.hint).toMatch(/^the DNS server did not answer in time/);
  });
});
