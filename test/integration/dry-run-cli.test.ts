/**
 * `svcnode dry-run NODE.json --profiles DIR --json` as a real subprocess (the built CLI) against
 * real servers: every failure category with the documented exit code and exactly one JSON document on
 * stdout; phase timeouts that end in time; bad input and bad material that exit 2 with a clear
 * message, no stack trace and no secret in any output. Needs `npx tsc -p tsconfig.json` first.
 */
import { join } from 'node:path';
import { mkdirSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeDefinition, ProfileDocument } from '../../src/definitions/types.js';
import { CATEGORY_NAMES } from '../../src/failures/categories.js';
import type { Result } from '../../src/invoke/result.js';
import { mintCa, mintLeaf } from '../../src/pki/mint.js';
import { pinOfSpki } from '../../src/tls/identity.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { createOpensslPki } from '../helpers/openssl-ca.js';
import { createTestPki, opensslPkcs12, type TestPki } from '../helpers/pki.js';
import { assertNoSecrets } from '../helpers/secrets.js';
import {
  startConnectProxy,
  startMtlsServer,
  startOpensslServer,
  startPlainHttpServer,
  startSilentServer,
  unusedPort,
  type MtlsServer,
  type TestServer,
} from '../helpers/servers.js';

/** The documented exit codes. */
const EXIT = { ok: 0, invalidInput: 2, tls: 3, http: 4, network: 5 } as const;
const DAY = 86_400_000;
/** Generous: the servers live in the (possibly busy) test process; only the timeout tests use short ones. */
const TIMEOUTS = { connectMs: 10_000, handshakeMs: 10_000, responseMs: 10_000 };
const SHORT = 700;
const P12_PASS = 'legacy-Pass 9!';
const WRONG_PASS = 'not-the-Pass 7?';

let pki: TestPki;
let nodesDir: string;
const servers: TestServer[] = [];
/** Failure categories seen on stdout, to prove that every failure category was produced through the CLI. */
const seen = new Set<string>();
/** Every secret that must never appear in any output. */
let secrets: string[];

let good: MtlsServer;
let leafOnly: MtlsServer;
let expiredServer: MtlsServer;
let otherHost: MtlsServer;
let expiredTarget: MtlsServer;
let hang: MtlsServer;
let opensslUrl: string;
let plainUrl: string;
let silentUrl: string;
let stalledProxyUrl: string;
let revokedUrl: string;

function writeNode(name: string, def: Omit<NodeDefinition, 'id' | 'tls' | 'timeouts' | 'retry'> & Partial<NodeDefinition>): string {
  const file = join(nodesDir, `${name}.json`);
  const doc: NodeDefinition = { id: name, tls: { profile: 'bank' }, timeouts: TIMEOUTS, retry: { limit: 0 }, ...def };
  writeFileSync(file, `${JSON.stringify(doc, null, 2)}\n`);
  return file;
}

function get(url: string, extra: Partial<NodeDefinition> = {}): Omit<NodeDefinition, 'id'> {
  return { request: { method: 'GET', url }, tls: { profile: 'bank' }, ...extra };
}

function dryRun(nodeFile: string, extraArgs: string[] = [], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  return runCli(['dry-run', nodeFile, '--profiles', pki.profilesDir, '--json', ...extraArgs], { env: { SVCNODE_PROFILES: undefined, ...env }, timeoutMs: 20_000 });
}

/** stdout must be exactly one JSON document: the Result. */
function oneResult(r: CliResult): Result {
  expect(r.timedOut).toBe(false);
  const text = r.stdout.trim();
  expect(text.startsWith('{') && text.endsWith('}'), `stdout is not one JSON document:\n${r.stdout}\nstderr:\n${r.stderr}`).toBe(true);
  const result = JSON.parse(text) as Result; // throws on a second document or any trailing text
  if (result.failure) seen.add(result.failure.category);
  return result;
}

function expectNoStackTrace(text: string): void {
  expect(text).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
  expect(text).not.toMatch(/uncaught|unhandled/i);
}

function expectClean(r: CliResult): void {
  assertNoSecrets(r.stdout, secrets, 'stdout');
  assertNoSecrets(r.stderr, secrets, 'stderr');
  expectNoStackTrace(r.stderr);
}

beforeAll(async () => {
  pki = await createTestPki();
  nodesDir = join(pki.dir, 'nodes');
  mkdirSync(nodesDir);
  const now = Date.now();
  const rogueRoot = await mintCa({ subject: 'CN=Rogue Root' });
  const [expiredLeaf, otherHostLeaf, rogueClient, expiredClient] = await Promise.all([
    mintLeaf({ subject: 'CN=localhost,O=expired', issuer: pki.intermediate, usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], notBefore: new Date(now - 30 * DAY), notAfter: new Date(now - DAY) }),
    mintLeaf({ subject: 'CN=otherhost', issuer: pki.intermediate, usage: 'server', dnsNames: ['otherhost'] }),
    mintLeaf({ subject: 'CN=svcnode-bot', issuer: rogueRoot, usage: 'client' }),
    mintLeaf({ subject: 'CN=svcnode-bot-expired', issuer: pki.intermediate, usage: 'client', notBefore: new Date(now - 30 * DAY), notAfter: new Date(now - DAY) }),
  ]);

  // Profiles: the good one, and one per kind of trouble.
  const trust = { ca: [pki.files.root] };
  const profile = (name: string, doc?: ProfileDocument): void => void pki.profile(name, doc);
  profile('bank');
  profile('none', { trust });
  profile('rogue', { client: { certificate: pki.write('rogue.pem', rogueClient.certPem), key: pki.write('rogue.key', rogueClient.keyPem) }, trust });
  profile('expired', { client: { certificate: pki.write('expired.pem', expiredClient.certPem, pki.intermediate.certPem), key: pki.write('expired.key', expiredClient.keyPem) }, trust });
  profile('mismatch', { client: { certificate: pki.files.clientChain, key: pki.files.serverKey }, trust });
  const legacy = opensslPkcs12({ certFiles: [pki.files.clientCert, pki.files.intermediate], keyFile: pki.files.clientKey, out: join(pki.dir, 'bot-legacy.pfx'), passphrase: P12_PASS, legacy: true });
  profile('legacy', { client: { pkcs12: legacy, passphrase: { env: 'SVCNODE_TEST_LEGACY_PASS' } }, trust });
  const corruptPem = pki.client.certPem.replace(/^(-----BEGIN CERTIFICATE-----\n)(.{20})/, '$1!!!!corrupt!!!!!!!!');
  profile('corrupt', { client: { certificate: pki.write('corrupt.pem', corruptPem), key: pki.files.clientKey }, trust });
  writeFileSync(join(pki.profilesDir, 'schemaless.json'), JSON.stringify({ client: { certificate: 'x.pem' }, trust: { ca: 'not-a-list' } }));

  // A server certificate revoked by a PKI run with `openssl ca`, and a profile with its CRLs.
  const ca = createOpensslPki(join(pki.dir, 'openssl-ca'));
  const revokedLeaf = ca.issueServer('revoked');
  ca.revoke(ca.intermediate, revokedLeaf.cert);
  profile('with-intermediate', { client: { certificate: pki.files.clientChain, key: pki.files.clientKey }, trust: { ca: [pki.files.root, pki.files.intermediate] } });
  profile('crl', { trust: { ca: [ca.root.cert, ca.intermediate.cert], crl: [ca.gencrl(ca.intermediate, join(pki.dir, 'issuing.crl')), ca.gencrl(ca.root, join(pki.dir, 'root.crl'))] } });

  const keyBody = (pem: string): string => pem.split('\n')[2] ?? pem;
  secrets = [P12_PASS, WRONG_PASS, ...[pki.client, pki.server, rogueClient, expiredClient].map((c) => keyBody(c.keyPem))];

  const track = <T extends TestServer>(s: T): T => {
    servers.push(s);
    return s;
  };
  const mtls = (key: string, cert: string, extra: Partial<Parameters<typeof startMtlsServer>[0]> = {}): Promise<MtlsServer> =>
    startMtlsServer({ key, cert, ca: pki.root.certPem, ...extra }).then(track);
  const chain = pki.server.certPem + pki.intermediate.certPem;
  const [g, l, e, o, et, h, ossl, plain, silent, stalled, revoked] = await Promise.all([
    mtls(pki.server.keyPem, chain, {
      handler: (req, res) => {
        req.resume();
        if (req.url?.startsWith('/missing')) res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
        // A hostile body for a terminal: set the title, clear the screen, overwrite the line with a fake verdict.
        else if (req.url?.startsWith('/ansi')) res.writeHead(500, { 'content-type': 'text/plain' }).end('hello \u001b]0;PWNED\u0007\u001b[2J\rresult      OK \u202eevil');
        else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ path: req.url, trace: req.headers['x-trace'] ?? null }));
      },
    }),
    mtls(pki.server.keyPem, pki.server.certPem),
    mtls(expiredLeaf.keyPem, expiredLeaf.certPem + pki.intermediate.certPem),
    mtls(otherHostLeaf.keyPem, otherHostLeaf.certPem + pki.intermediate.certPem),
    mtls(pki.server.keyPem, chain),
    mtls(pki.server.keyPem, chain, { handler: () => new Promise<void>(() => undefined) }),
    startOpensslServer({ certFile: pki.files.serverCert, keyFile: pki.files.serverKey, chainFile: pki.files.intermediate, caFile: pki.files.root, verify: 'require', tls: '1.3' }).then(track),
    startPlainHttpServer().then(track),
    startSilentServer().then(track),
    startConnectProxy({ stall: true }).then(track),
    startOpensslServer({ certFile: revokedLeaf.cert, keyFile: revokedLeaf.key, chainFile: ca.intermediate.cert, verify: 'none', tls: 'both' }).then(track),
  ]);
  revokedUrl = `https://localhost:${revoked.port}/`;
  [good, leafOnly, expiredServer, otherHost, expiredTarget, hang] = [g, l, e, o, et, h];
  opensslUrl = `https://localhost:${ossl.port}/`;
  plainUrl = `https://localhost:${plain.port}/`;
  silentUrl = `https://localhost:${silent.port}/`;
  stalledProxyUrl = stalled.url;
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await pki?.cleanup();
});

describe('the server chain as sent', () => {
  const subjects = { leaf: 'CN=localhost, O=svcnode tests', intermediate: 'CN=svcnode Test Intermediate, O=svcnode tests', root: 'CN=svcnode Test Root, O=svcnode tests' };

  /** The `sent` marks of a dry-run of `server` with trust.ca root + intermediate (JSON), and its text report. */
  const marks = async (name: string, server: TestServer): Promise<{ chain: [string, boolean | undefined][]; text: string }> => {
    const node = writeNode(name, get(`https://localhost:${server.port}/`, { tls: { profile: 'with-intermediate' } }));
    const r = await dryRun(node);
    expect(r.code, r.stderr).toBe(EXIT.ok);
    const text = await runCli(['dry-run', node, '--profiles', pki.profilesDir], { env: { SVCNODE_PROFILES: undefined }, timeoutMs: 20_000 });
    return { chain: (oneResult(r).tls?.serverChain ?? []).map((c) => [c.subject, c.sent]), text: text.stdout };
  };

  it("a backend's bytes cannot drive the terminal: control characters in the text report are shown escaped", async () => {
    const r = await runCli(['dry-run', writeNode('ansi', get(`https://localhost:${good.port}/ansi`)), '--profiles', pki.profilesDir], { env: { SVCNODE_PROFILES: undefined }, timeoutMs: 20_000 });
    expect(r.code).toBe(EXIT.http);
    // Before: ESC, BEL and CR went out raw (a screen cleared, a fake "result OK" over the FAILED line).
    for (const raw of ["\u001b", "\u0007", "\r", "\u202e"]) expect(r.stdout).not.toContain(raw);
    expect(r.stdout).toContain('hello \\u001b]0;PWNED\\u0007\\u001b[2J\\u000dresult      OK \\u202eevil');
    expect(r.stdout).toContain('FAILED      http_status');
  });

  it('marks what trust.ca completed: a server sending only its leaf is said to send an incomplete chain', async () => {
    // Node completes the chain from trust.ca: before, both servers showed the same three certificates.
    const { chain, text } = await marks('chain-leaf-only', leafOnly);
    expect(chain).toEqual([[subjects.leaf, true], [subjects.intermediate, false], [subjects.root, false]]);
    expect(text).toContain(`${subjects.intermediate}  [not sent by the server: from trust.ca]`);
    expect(text).toContain(`note: the server sends an incomplete chain (without "${subjects.intermediate}")`);
  });

  it('a server sending leaf and intermediate: only the root comes from trust.ca, and no note', async () => {
    const { chain, text } = await marks('chain-full', good);
    expect(chain).toEqual([[subjects.leaf, true], [subjects.intermediate, true], [subjects.root, false]]);
    expect(text).not.toContain('incomplete chain');
  });

  it('a TLS 1.2 server that demands a client certificate: read before it aborts the check (which sends none)', async () => {
    const server = await startOpensslServer({ certFile: pki.files.serverCert, keyFile: pki.files.serverKey, caFile: pki.files.root, verify: 'require', tls: '1.2' });
    servers.push(server);
    const r = await dryRun(writeNode('chain-tls12', get(`https://localhost:${server.port}/`, { tls: { profile: 'with-intermediate' } })), ['--tls-only']);
    expect(r.code, r.stderr).toBe(EXIT.ok);
    expect(oneResult(r).tls?.serverChain.map((c) => [c.subject, c.sent])).toEqual([[subjects.leaf, true], [subjects.intermediate, false], [subjects.root, false]]);
  });

  it('behind the node\'s proxy: marked through a tunnel of its own (before, the marks were left out)', async () => {
    const proxy = await startConnectProxy();
    servers.push(proxy);
    const r = await dryRun(writeNode('chain-proxy', get(`https://localhost:${leafOnly.port}/`, { tls: { profile: 'with-intermediate' }, proxy: { url: proxy.url } })));
    expect(r.code, r.stderr).toBe(EXIT.ok);
    expect(oneResult(r).tls?.serverChain.map((c) => [c.subject, c.sent])).toEqual([[subjects.leaf, true], [subjects.intermediate, false], [subjects.root, false]]);
    // The call's tunnel and the check's.
    expect(proxy.tunnels).toBe(2);
  });

  it("with the node's cipher list, against a server that takes only that cipher (before, the check offered others and got nothing)", async () => {
    const server = await startOpensslServer({ certFile: pki.files.serverCert, keyFile: pki.files.serverKey, verify: 'none', tls: '1.2', extraArgs: ['-cipher', 'CAMELLIA256-SHA'] });
    servers.push(server);
    const r = await dryRun(writeNode('chain-cipher', get(`https://localhost:${server.port}/`, { tls: { profile: 'with-intermediate', maxVersion: 'TLSv1.2', ciphers: 'CAMELLIA256-SHA' } })));
    expect(r.code, r.stderr).toBe(EXIT.ok);
    expect(oneResult(r).tls?.serverChain.map((c) => [c.subject, c.sent])).toEqual([[subjects.leaf, true], [subjects.intermediate, false], [subjects.root, false]]);
  });

  it('a server certificate with only a CN (no subjectAltName): ok, with a note that other clients refuse it', async () => {
    const cnOnly = await mintLeaf({ subject: 'CN=localhost,O=cn only', issuer: pki.intermediate, usage: 'server' });
    const server = await startMtlsServer({ key: cnOnly.keyPem, cert: cnOnly.certPem + pki.intermediate.certPem, ca: pki.root.certPem });
    servers.push(server);
    const node = writeNode('cn-only', get(`https://localhost:${server.port}/`));
    const r = await dryRun(node);
    expect(r.code, r.stderr).toBe(EXIT.ok);
    const result = oneResult(r);
    expect(result.ok).toBe(true);
    // Before: ok without a word; Node matched "localhost" against the CN.
    expect(result.tls?.serverChain.map((c) => c.noSubjectAltName)).toEqual([true, undefined, undefined]);
    const text = await runCli(['dry-run', node, '--profiles', pki.profilesDir], { env: { SVCNODE_PROFILES: undefined }, timeoutMs: 20_000 });
    expect(text.code).toBe(EXIT.ok);
    expect(text.stdout).toContain('note: the server certificate "CN=localhost, O=cn only" has no subjectAltName');
    expect(text.stdout).toContain('result      OK');
    const withNames = await marks('san-present', good);
    expect(withNames.text).not.toContain('subjectAltName');
  });

  it('a failed verification is marked too: the expired server sent its intermediate', async () => {
    const r = await dryRun(writeNode('chain-expired', get(`https://localhost:${expiredServer.port}/`, { tls: { profile: 'with-intermediate' } })));
    expect(r.code).toBe(EXIT.tls);
    expect(oneResult(r).tls?.serverChain.map((c) => c.sent)).toEqual([true, true, false]);
  });
});

describe.concurrent('every failure category, with its exit code and one JSON document on stdout', () => {
  const at = (s: () => MtlsServer, path = '/'): (() => string) => () => `https://localhost:${s().port}${path}`;
  const cases: Array<[string, () => Omit<NodeDefinition, 'id'>, string | null, number, ((r: Result) => void)?]> = [

    ['server_cert_untrusted', () => get(at(() => leafOnly)()), 'server_cert_untrusted', EXIT.tls, (r) => expect(r.failure?.hint).toContain('svcnode Test Intermediate')],
    ['server_cert_expired', () => get(at(() => expiredServer)()), 'server_cert_expired', EXIT.tls],
    ['server_hostname_mismatch', () => get(at(() => otherHost)()), 'server_hostname_mismatch', EXIT.tls],
    ['server_identity_mismatch', () => get(at(() => good)(), { tls: { profile: 'bank', pinnedPublicKeys: [pinOfSpki(pki.root.cert.publicKey.export({ type: 'spki', format: 'der' }))] } }), 'server_identity_mismatch', EXIT.tls],
    ['client_cert_rejected', () => get(opensslUrl, { tls: { profile: 'rogue' } }), 'client_cert_rejected', EXIT.tls],
    ['client_cert_required', () => get(at(() => good)(), { tls: { profile: 'none' } }), 'client_cert_required', EXIT.tls],
    ['client_cert_expired', () => get(at(() => expiredTarget)(), { tls: { profile: 'expired' } }), 'client_cert_expired', EXIT.tls, () => expect(expiredTarget.tcpConnections).toBe(0)],
    ['protocol_mismatch', () => get(plainUrl), 'protocol_mismatch', EXIT.tls],
    ['http_status', () => get(at(() => good, '/missing')()), 'http_status', EXIT.http, (r) => expect(r.response?.status).toBe(404)],
    ['server_cert_revoked', () => get(revokedUrl, { tls: { profile: 'crl' } }), 'server_cert_revoked', EXIT.tls, (r) => expect(r.failure?.hint).toContain('issuing.crl')],
    ['invalid_input (missing template variable)', () => get(`https://localhost:${good.port}/accounts/{{context.accountId}}`), 'invalid_input', EXIT.invalidInput, (r) => expect(r.failure?.message).toContain('context.accountId')],
  ];

  it.each(cases)('%s', async (name, def, category, exit, extra) => {
    const r = await dryRun(writeNode(name.replace(/\W+/g, '-'), def()));
    const result = oneResult(r);
    expect(result.failure?.category ?? null, JSON.stringify(result.failure)).toBe(category);
    expect(r.code).toBe(exit);
    expect(result.ok).toBe(category === null);
    extra?.(result);
    expectClean(r);
  });

  it('connect_failed: the proxy answers 407', async () => {
    const proxy = await startConnectProxy({ auth: { username: 'u', password: 'secret-proxy-pass' } });
    servers.push(proxy);
    const r = await dryRun(writeNode('proxy-407', get(`https://localhost:${good.port}/`, { proxy: { url: proxy.url } })));
    const result = oneResult(r);
    expect(result.failure?.category).toBe('connect_failed');
    expect(result.failure?.code).toBe('PROXY_407');
    expect(r.code).toBe(EXIT.network);
  });

  it('invalid_input: CR/LF in a rendered header value is rejected before any connection', async () => {
    const ctx = join(pki.dir, 'crlf-context.json');
    writeFileSync(ctx, JSON.stringify({ trace: 'abc\r\nX-Injected: 1' }));
    const target = await startMtlsServer({ key: pki.server.keyPem, cert: pki.server.certPem + pki.intermediate.certPem, ca: pki.root.certPem });
    servers.push(target);
    const url = `https://localhost:${target.port}/`;
    const r = await dryRun(writeNode('crlf', { request: { method: 'GET', url, headers: { 'x-trace': '{{context.trace}}' } } }), ['--context', ctx]);
    const result = oneResult(r);
    expect(result.failure?.category).toBe('invalid_input');
    expect(r.code).toBe(EXIT.invalidInput);
    expect(target.tcpConnections).toBe(0);
  });

  it('ok: --context renders the URL (encoded) and headers', async () => {
    const ctx = join(pki.dir, 'context.json');
    writeFileSync(ctx, JSON.stringify({ accountId: 'ACC 42/x', trace: 't-1' }));
    const url = `https://localhost:${good.port}/accounts/{{context.accountId}}`;
    const r = await dryRun(writeNode('with-context', { request: { method: 'GET', url, headers: { 'x-trace': '{{context.trace}}' } } }), ['--context', ctx]);
    const result = oneResult(r);
    expect(r.code).toBe(EXIT.ok);
    expect(result.ok).toBe(true);
    expect(result.failure).toBeNull();
    expect(result.request.url).toBe(`https://localhost:${good.port}/accounts/ACC%2042%2Fx`);
    expect(result.response?.body).toEqual({ path: '/accounts/ACC%2042%2Fx', trace: 't-1' });
    expect(result.tls?.clientCertificate?.subject).toContain('CN=svcnode-bot');
    expectClean(r);
  });
});

describe('invalid node definitions exit 2 with the JSON pointer on stderr', () => {
  it('schema violations name the offending fields', async () => {
    const file = join(nodesDir, 'invalid.json');
    writeFileSync(file, JSON.stringify({ id: 'bad', request: { method: 'FETCH', url: 'https://x.example/' }, tls: { profile: 'bank', minVersion: 'TLSv1.0' } }));
    const r = await dryRun(file);
    expect(r.code).toBe(EXIT.invalidInput);
    expect(r.stderr).toContain('/request/method');
    expect(r.stderr).toContain('/tls/minVersion');
    const result = oneResult(r);
    expect(result).toMatchObject({ ok: false, nodeId: 'bad', failure: { category: 'invalid_input', phase: 'input', code: 'SVCNODE_INVALID_DEFINITION' } });
    expect(result.failure?.message).toContain('/request/method');
    expectClean(r);
  });

  it('broken JSON syntax', async () => {
    const file = join(nodesDir, 'broken.json');
    writeFileSync(file, '{"id": "broken", "request": ');
    const r = await dryRun(file);
    expect(r.code).toBe(EXIT.invalidInput);
    expect(r.stderr).toContain('broken.json');
    expect(oneResult(r)).toMatchObject({ nodeId: 'broken', failure: { category: 'invalid_input', code: 'SVCNODE_INVALID_DEFINITION' } });
    expectClean(r);
  });
});

describe('bad certificate material exits 2 with a clear message, no stack trace, no secret', () => {
  it('key does not belong to the certificate', async () => {
    const r = await dryRun(writeNode('mismatch', get(`https://localhost:${good.port}/`, { tls: { profile: 'mismatch' } })));
    expect(r.code).toBe(EXIT.invalidInput);
    expect(r.signal).toBeNull();
    expect(r.stderr).toContain('SVCNODE_KEY_MISMATCH');
    expect(oneResult(r).failure).toMatchObject({ category: 'invalid_input', phase: 'input', code: 'SVCNODE_KEY_MISMATCH' });
    expectClean(r);
  });

  it('legacy PKCS#12 with the wrong passphrase', async () => {
    const before = good.tcpConnections;
    const r = await dryRun(writeNode('legacy-wrong', get(`https://localhost:${good.port}/`, { tls: { profile: 'legacy' } })), [], { SVCNODE_TEST_LEGACY_PASS: WRONG_PASS });
    expect(r.code).toBe(EXIT.invalidInput);
    expect(r.signal).toBeNull();
    expect(r.stderr).toContain('SVCNODE_BAD_PASSPHRASE');
    expect(oneResult(r).failure).toMatchObject({ category: 'invalid_input', code: 'SVCNODE_BAD_PASSPHRASE' });
    expect(good.tcpConnections).toBe(before);
    expectClean(r);
  });

  it.each([
    ['an unknown profile', 'nowhere', 'SVCNODE_UNKNOWN_PROFILE'],
    ['a corrupt PEM', 'corrupt', 'SVCNODE_INVALID_BUNDLE'],
    ['a profile that breaks its schema', 'schemaless', 'SVCNODE_INVALID_PROFILE'],
  ])('%s: one JSON Result (invalid_input) on stdout, exit 2, no connection', async (_label, profile, code) => {
    const before = good.tcpConnections;
    const r = await dryRun(writeNode(`bad-${profile}`, get(`https://localhost:${good.port}/`, { tls: { profile } })));
    expect(r.code).toBe(EXIT.invalidInput);
    const result = oneResult(r);
    expect(result).toMatchObject({ ok: false, nodeId: `bad-${profile}`, response: null, failure: { category: 'invalid_input', phase: 'input', code } });
    expect(good.tcpConnections).toBe(before);
    expectClean(r);
  });
});

describe('network failures and timeouts exit 5; timeouts end within the configured timeout + 1 s', () => {
  const short = { connectMs: SHORT, handshakeMs: SHORT, responseMs: SHORT };
  /** Process start-up and exit of a dry-run that fails at once, measured on this machine now. */
  let baselineMs = 0;

  it('connect_failed: nothing listens on the port (this run is also the start-up baseline)', async () => {
    const r = await dryRun(writeNode('refused', get(`https://localhost:${await unusedPort()}/`)));
    const result = oneResult(r);
    expect(result.failure?.category).toBe('connect_failed');
    expect(r.code).toBe(EXIT.network);
    baselineMs = r.durationMs;
  });

  it.each([
    ['a stalled CONNECT proxy', () => get(`https://localhost:${good.port}/`, { proxy: { url: stalledProxyUrl } })],
    ['a silent server (the TLS handshake never finishes)', () => get(silentUrl)],
    ['a server that completes TLS but never answers', () => get(`https://localhost:${hang.port}/`)],
  ] as const)('%s', async (_label, def) => {
    const r = await dryRun(writeNode(`timeout-${_label.length}`, { ...def(), timeouts: short }));
    const result = oneResult(r);
    expect(['timeout', 'connect_failed']).toContain(result.failure?.category);
    expect(r.code).toBe(EXIT.network);
    expect(result.timings.totalMs).toBeLessThanOrEqual(SHORT + 1_000);
    // The process itself ends too (no socket or timer keeps it alive after the Result). Start-up
    // time varies on a busy machine, hence the baseline and a second of slack on top.
    expect(r.durationMs - baselineMs).toBeLessThanOrEqual(SHORT + 1_000 + 1_000);
  });

  it('every SPEC failure category was produced through the CLI in this file', () => {
    expect([...seen].sort()).toEqual([...CATEGORY_NAMES].sort());
  });
});
