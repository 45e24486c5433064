import { describe, expect, it } from 'vitest';
import type { ChainEntry } from '../../src/tls/probe.js';
import { keptHeaders, reportedUrl, responseBody, storedResult, STORED_RESULT_OVERHEAD_BYTES, type Result } from '../../src/invoke/result.js';

const entry = (cn: string): ChainEntry => ({ subject: `CN=${cn}`, issuer: 'CN=CA', validFrom: 'a', validTo: 'b', fingerprint256: 'AA' });

function result(body: unknown, extra: Partial<Result> = {}): Result {
  return {
    ok: true,
    nodeId: 'n',
    request: { method: 'GET', url: 'https://h/x' },
    tls: { protocol: 'TLSv1.3', cipher: 'c', sessionReused: false, connectionReused: false, serverChain: [entry('leaf'), entry('int'), entry('root')], clientCertificate: null },
    response: { status: 200, headers: { 'content-type': 'text/plain' }, body },
    failure: null,
    timings: { connectMs: 1, handshakeMs: 1, totalMs: 1 },
    attempts: 1,
    ...extra,
  };
}

const size = (r: Result): number => Buffer.byteLength(JSON.stringify(r));

describe('stored Result bound', () => {
  it('a body of 1 MiB of NULs (6 bytes each as JSON) is cut to maxStoredBodyBytes and marked truncated', () => {
    const stored = storedResult(result('\u0000'.repeat(1_048_576)), {});
    expect(stored.response?.truncated).toBe(true);
    expect(Buffer.byteLength(JSON.stringify(stored.response?.body))).toBeLessThanOrEqual(32_768);
    expect(size(stored)).toBeLessThan(32_768 + STORED_RESULT_OVERHEAD_BYTES);
  });

  it('multi-byte text and surrogate pairs are cut on a character boundary, within the limit', () => {
    const stored = storedResult(result('ü€😀'.repeat(10_000)), { response: { maxStoredBodyBytes: 1001 } });
    const body = stored.response?.body as string;
    expect(Buffer.byteLength(JSON.stringify(body))).toBeLessThanOrEqual(1001);
    expect(body.length).toBeGreaterThan(100);
    expect(body).not.toMatch(/[\ud800-\udbff]$/);
  });

  it('a parsed JSON body that does not fit becomes its cut JSON text; one that fits stays parsed', () => {
    const big = { items: Array.from({ length: 5000 }, (_, i) => ({ i, name: `item ${i}` })) };
    const cut = storedResult(result(big), { response: { maxStoredBodyBytes: 2048 } });
    expect(typeof cut.response?.body).toBe('string');
    expect(cut.response?.truncated).toBe(true);
    const small = storedResult(result({ ok: 1 }), {});
    expect(small.response?.body).toEqual({ ok: 1 });
    expect(small.response?.truncated).toBeUndefined();
  });

  it('maxStoredBodyBytes 0 omits the body with a flag', () => {
    const stored = storedResult(result('hello'), { response: { maxStoredBodyBytes: 0 } });
    expect(stored.response?.body).toBeNull();
    expect(stored.response?.bodyOmitted).toBe(true);
  });

  it('a successful Result is stored without the server chain; a failed one with the whole chain', () => {
    expect(storedResult(result('x'), {}).tls?.serverChain).toEqual([]);
    const failed = result('x', { ok: false, failure: { phase: 'response', category: 'http_status', code: 'HTTP_500', message: 'm', hint: 'h' } });
    expect(storedResult(failed, {}).tls?.serverChain).toHaveLength(3);
  });

  it('hostile sizes elsewhere (huge headers, chain, message) still stay within the bound', () => {
    const headers: Record<string, string> = {};
    for (let i = 0; i < 200; i++) headers[`x-h${i}`] = 'v'.repeat(500);
    const hostile = result('b'.repeat(100_000), {
      ok: false,
      tls: { protocol: null, cipher: null, sessionReused: false, connectionReused: false, serverChain: Array.from({ length: 50 }, () => entry('x'.repeat(5000))), clientCertificate: null },
      failure: { phase: 'response', category: 'http_status', code: 'HTTP_500', message: 'm'.repeat(100_000), hint: 'h' },
    });
    hostile.response = { status: 500, headers, body: 'b'.repeat(100_000) };
    expect(size(storedResult(hostile, {}))).toBeLessThanOrEqual(32_768 + STORED_RESULT_OVERHEAD_BYTES);
  });

  it('a discovered token endpoint of 900 KB in auth (a cached report) is cut: the Result keeps its bound', () => {
    const auth = { type: 'oauth2-client-credentials' as const, tokenEndpoint: `https://as/token?pad=${'x'.repeat(900_000)}`, endpointSource: 'token_endpoint' as const, clientAuth: 'tls_client_auth' as const, status: null, cached: true, expiresIn: 300, binding: 'opaque' as const, token: '[redacted]' as const };
    const stored = storedResult(result({ ok: 1 }, { auth }), {});
    expect(size(stored)).toBeLessThanOrEqual(32_768 + STORED_RESULT_OVERHEAD_BYTES);
    expect(stored.auth).toMatchObject({ endpointSource: 'token_endpoint', cached: true, binding: 'opaque' });
    expect(stored.response?.body).toEqual({ ok: 1 });
  });

  it('a field storedResult knows nothing of (a later addition) cannot break the bound either', () => {
    for (const maxStoredBodyBytes of [0, 32_768]) {
      const later = { ...result('b'.repeat(100_000)), later: { note: '\u0001'.repeat(200_000), list: Array.from({ length: 1000 }, () => 'y'.repeat(100)) } } as Result;
      later.failure = { phase: 'response', category: 'http_status', code: 'C'.repeat(50_000), message: '\u0001'.repeat(50_000), hint: 'h'.repeat(50_000) };
      later.nodeId = '\u0001'.repeat(50_000);
      later.requestId = '\u0001'.repeat(50_000);
      later.request = { method: '\u0001'.repeat(50_000), url: '\u0001'.repeat(50_000) };
      const stored = storedResult(later, { response: { maxStoredBodyBytes } });
      expect(size(stored), String(maxStoredBodyBytes)).toBeLessThanOrEqual(maxStoredBodyBytes + STORED_RESULT_OVERHEAD_BYTES - 64);
      expect(stored).toMatchObject({ ok: true, response: { status: 200, body: null, bodyOmitted: true }, failure: { code: expect.stringMatching(/^C+…$/) as unknown } });
    }
  });

  it('long Locations of followed redirects are cut, and the body still fits beside them', () => {
    const hops = Array.from({ length: 5 }, (_, i) => ({ status: 307, method: 'GET', url: `https://h/${String(i).repeat(8_000)}` }));
    const stored = storedResult(result('b'.repeat(40_000), { request: { method: 'GET', url: 'https://h/x', redirects: hops } }), {});
    expect(size(stored)).toBeLessThanOrEqual(32_768 + STORED_RESULT_OVERHEAD_BYTES);
    expect(stored.request.redirects?.map((h) => [h.status, h.url.length <= 260])).toEqual(hops.map(() => [307, true]));
    expect(stored.response?.bodyOmitted).toBeUndefined();
  });
});

describe('what a Result never holds', () => {
  it('long certificate-session login URLs are cut like redirect URLs, and the body still fits beside them', () => {
    const endpoints = Array.from({ length: 4 }, (_, i) => ({ url: `https://pod.example/login/${i}/${'x'.repeat(8_000)}`, header: `h${i}`, cached: false, status: 200, ms: 12.5 }));
    const stored = storedResult(result('b'.repeat(40_000), { auth: { type: 'certificate-session', endpoints } }), {});
    expect(size(stored)).toBeLessThan(32_768 + STORED_RESULT_OVERHEAD_BYTES);
    expect(stored.auth?.type === 'certificate-session' && stored.auth.endpoints.map((e) => [e.header, e.status, e.url.length <= 257])).toEqual([['h0', 200, true], ['h1', 200, true], ['h2', 200, true], ['h3', 200, true]]);
    expect(stored.response?.truncated).toBe(true);
  });

  it('drops cookies, authorization-like and token headers, keeps the rest', () => {
    const kept = keptHeaders({
      'content-type': 'application/json',
      'set-cookie': ['sid=SECRET'],
      authorization: 'Bearer SECRET',
      'proxy-authorization': 'Basic SECRET',
      'x-auth-token': 'SECRET',
      sessiontoken: 'SECRET',
      'x-api-key': 'SECRET',
      'x-csrf-token': 'SECRET',
      'x-request-id': 'r-1',
      'www-authenticate': 'Bearer realm="x"',
      etag: '"1"',
    });
    expect(Object.keys(kept).sort()).toEqual(['content-type', 'etag', 'www-authenticate', 'x-request-id']);
  });

  it('drops header names with _ for -, pass as a word, and keys; URLs in Link and Refresh lose credential values', () => {
    const kept = keptHeaders({
      'x-api_key': 'SECRET',
      'x-client-pass': 'SECRET',
      'x-functions-key': 'SECRET',
      'x-bypass-cache': '1',
      link: '<https://h/next?access_token=SECRET&page=2>; rel="next", <https://h/last;jsessionid=SECRET>; rel="last"',
      refresh: "5; url='https://h/a?session=SECRET'",
      'content-location': 'https://h/cb#access_token=SECRET&token_type=bearer&state=s1',
    });
    expect(Object.keys(kept).sort()).toEqual(['content-location', 'link', 'refresh', 'x-bypass-cache']);
    expect(kept.link).toBe('<https://h/next?access_token=[redacted]&page=2>; rel="next", <https://h/last;jsessionid=[redacted]>; rel="last"');
    expect(kept.refresh).toBe("5; url='https://h/a?session=[redacted]'");
    expect(kept['content-location']).toBe('https://h/cb#access_token=[redacted]&token_type=[redacted]&state=s1');
  });

  it('reported URLs lose credential values in the fragment, ;-path parameters and ;-separated query parameters', () => {
    expect(reportedUrl('https://app.example/cb#access_token=SECRET&token_type=bearer&state=s1')).toBe('https://app.example/cb#access_token=[redacted]&token_type=[redacted]&state=s1');
    expect(reportedUrl('/app;jsessionid=SECRET?x=1')).toBe('/app;jsessionid=[redacted]?x=1');
    expect(reportedUrl('/a?x=1;session=SECRET;y=2')).toBe('/a?x=1;session=[redacted];y=2');
    expect(reportedUrl('/a?pass=SECRET&passenger=3&bypass=4')).toBe('/a?pass=[redacted]&passenger=3&bypass=4');
    expect(reportedUrl('/a;v=1/b?x=1#top')).toBe('/a;v=1/b?x=1#top');
  });

  it('reported URLs lose any parameter value equal to a secret the call sent, as written or percent-decoded', () => {
    const sent = ['s3cr3t+token/value', 'short'];
    expect(reportedUrl('https://h/next?t=s3cr3t%2Btoken%2Fvalue&s=short&n=1', sent)).toBe('https://h/next?t=[redacted]&s=short&n=1');
    expect(reportedUrl('https://h/next;k=s3cr3t+token%2fvalue?s3cr3t%2btoken/value#f=s3cr3t%2Btoken%2Fvalue', sent)).toBe('https://h/next;k=[redacted]?[redacted]#f=[redacted]');
    expect(reportedUrl('https://h/next?t=other', sent)).toBe('https://h/next?t=other');
  });

  it('reported URLs carry no userinfo', () => {
    expect(reportedUrl(new URL('https://admin:S3cretPW@h:8443/a?b=1'))).toBe('https://h:8443/a?b=1');
    expect(reportedUrl('https://admin:S3cretPW@h/{{context.x}}')).not.toContain('S3cretPW');
    expect(reportedUrl('https://h/a@b')).toBe('https://h/a@b');
  });
});

describe('response bodies', () => {
  it('UTF-8 text stays text, other bytes become base64 with a flag, JSON is parsed', () => {
    expect(responseBody(Buffer.from('héllo'), 'text/plain', false)).toEqual({ body: 'héllo' });
    expect(responseBody(Buffer.from([0xff, 0xfe, 0x00, 0x81]), 'application/octet-stream', false)).toEqual({ body: '//4AgQ==', bodyEncoding: 'base64' });
    expect(responseBody(Buffer.from('{"a":1}'), 'application/json', false)).toEqual({ body: { a: 1 } });
    expect(responseBody(Buffer.alloc(0), 'text/plain', false)).toEqual({ body: null });
  });

  it('a text body cut in the middle of a character is still text', () => {
    const cut = Buffer.from('abc€').subarray(0, 5);
    expect(responseBody(cut, 'text/plain', true)).toEqual({ body: 'abc' });
  });
});

describe('response bodies in their declared charset', () => {
  const utf16be = (text: string): Buffer => Buffer.from(text, 'utf16le').swap16();

  it('JSON in UTF-16 (LE, BE, with or without BOM), ISO-8859-1 or windows-1252 is decoded and parsed', () => {
    const json = '{"name":"café","note":"naïve"}';
    const doc = { name: 'café', note: 'naïve' };
    expect(responseBody(Buffer.from(json, 'utf16le'), 'application/json; charset=utf-16le', false)).toEqual({ body: doc });
    expect(responseBody(Buffer.from(`\uFEFF${json}`, 'utf16le'), 'application/json;charset="UTF-16"', false)).toEqual({ body: doc });
    expect(responseBody(utf16be(json), 'application/json; Charset=UTF-16BE', false)).toEqual({ body: doc });
    expect(responseBody(Buffer.from(json, 'latin1'), 'application/json; charset=iso-8859-1', false)).toEqual({ body: doc });
    expect(responseBody(Buffer.from([...Buffer.from('{"price":"5 '), 0x80, ...Buffer.from('"}')]), 'application/vnd.bank+json; charset=windows-1252', false)).toEqual({ body: { price: '5 €' } });
  });

  it('a UTF-8 byte-order mark is no part of the body: JSON behind one is parsed, text loses it', () => {
    expect(responseBody(Buffer.from('\uFEFF{"hello":"wörld"}'), 'application/json', false)).toEqual({ body: { hello: 'wörld' } });
    expect(responseBody(Buffer.from('\uFEFFhello'), 'text/plain', false)).toEqual({ body: 'hello' });
  });

  it('text in a declared charset other than UTF-8 is kept as text', () => {
    expect(responseBody(Buffer.from('Grüße', 'latin1'), 'text/plain; charset=ISO-8859-1', false)).toEqual({ body: 'Grüße' });
    expect(responseBody(Buffer.from('Grüße', 'utf16le'), 'text/csv; charset=utf-16le', false)).toEqual({ body: 'Grüße' });
    // As in browsers, an ISO-8859-1 label reads 0x80–0x9F as windows-1252 (typographic quotes, €).
    expect(responseBody(Buffer.from([0x49, 0x92, 0x6d, 0x20, 0x80]), 'text/plain; charset=iso-8859-1', false)).toEqual({ body: 'I’m €' });
  });

  it('bytes that are not of the declared charset are base64; an unknown charset or UTF-8 reads as before', () => {
    expect(responseBody(Buffer.from([0x7b, 0x00, 0x22]), 'application/json; charset=utf-16le', false)).toEqual({ body: 'ewAi', bodyEncoding: 'base64' });
    expect(responseBody(Buffer.from('{"a":"é"}'), 'application/json; charset=x-unknown', false)).toEqual({ body: { a: 'é' } });
    expect(responseBody(Buffer.from('{"a":"é"}'), 'application/json; charset=utf-8', false)).toEqual({ body: { a: 'é' } });
    expect(responseBody(Buffer.from([0xe9]), 'text/plain; charset=utf-8', false)).toEqual({ body: '6Q==', bodyEncoding: 'base64' });
  });

  it('a UTF-16 body cut in the middle of a character is text without it', () => {
    const cut = Buffer.from('ab😀', 'utf16le').subarray(0, 7);
    expect(responseBody(cut, 'text/plain; charset=utf-16le', true)).toEqual({ body: 'ab' });
  });

  it('a parsed body decoded from another charset still respects the stored bound', () => {
    const source = `[${Array.from({ length: 1_000 }, () => '"ééé"').join(',')}]`;
    const { body } = responseBody(Buffer.from(source, 'latin1'), 'application/json; charset=iso-8859-1', false);
    expect(Array.isArray(body) && body[0]).toBe('ééé');
    const stored = storedResult(result(body), { response: { maxStoredBodyBytes: 4096 } });
    expect(Buffer.byteLength(JSON.stringify(stored.response?.body))).toBeLessThanOrEqual(4096);
    expect(stored.response?.truncated).toBe(true);
  });
});

describe('bound proofs without re-serialising', () => {
  it('a parsed JSON body whose numbers grow when re-serialised still respects the limit', () => {
    const source = `[${Array.from({ length: 300 }, () => '1e20').join(',')}]`;
    const { body } = responseBody(Buffer.from(source), 'application/json', false);
    const stored = storedResult(result(body), { response: { maxStoredBodyBytes: 2048 } });
    expect(Buffer.byteLength(JSON.stringify(stored.response?.body))).toBeLessThanOrEqual(2048);
    expect(stored.response?.truncated).toBe(true);
  });
});

describe('revocation verdicts in a stored Result', () => {
  const withVerdicts = (revocation: NonNullable<Result['tls']>['revocation'], extra: Partial<Result> = {}): Result => {
    const r = result('x', extra);
    return { ...r, tls: { ...(r.tls as NonNullable<Result['tls']>), revocation } };
  };

  it('a success keeps only the warnings, and no field when every verdict is ok', () => {
    expect(storedResult(withVerdicts([{ source: 'crl', result: 'ok' }]), {}).tls).not.toHaveProperty('revocation');
    const warned = storedResult(withVerdicts([{ source: 'crl', result: 'ok' }, { source: 'crl', result: 'unknown', subject: 'CN=x', message: 'no current CRL' }]), {});
    expect(warned.tls?.revocation).toEqual([{ source: 'crl', result: 'unknown', subject: 'CN=x', message: 'no current CRL' }]);
  });

  it('hostile verdicts (many, with huge texts) stay within the bound', () => {
    const huge = Array.from({ length: 50 }, () => ({ source: 'crl' as const, result: 'unknown' as const, subject: '\u0001'.repeat(20_000), message: '\u0001'.repeat(20_000) }));
    const stored = storedResult(withVerdicts(huge), {});
    expect(stored.tls?.revocation).toHaveLength(4);
    expect(size(stored)).toBeLessThan(32_768 + STORED_RESULT_OVERHEAD_BYTES);
  });
});

describe('keptHeaders and header names that are Object.prototype keys', () => {
  it('keeps a header named toString or constructor as the string it is (before: run through Object.prototype functions)', () => {
    const kept = keptHeaders({ tostring: 'a', constructor: 'b', location: '/x?access_token=t1' });
    expect(kept).toEqual({ tostring: 'a', constructor: 'b', location: '/x?access_token=[redacted]' });
    expect(JSON.parse(JSON.stringify(keptHeaders({ toString: 'c', hasOwnProperty: 'd' })))).toEqual({ toString: 'c', hasOwnProperty: 'd' });
  });
});
