/**
 * invoke() and our client certificate: rejected (OpenSSL server → alert, Node server → bare close;
 * TLS 1.2 and 1.3), required (no client in the profile), expired (never presented), and the pass
 * cases for RSA and EC keys from PEM and PKCS#12 (modern and legacy) profiles.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { NodeDefinition, ProfileDocument } from '../../src/definitions/types.js';
import { invoke } from '../../src/invoke/execute.js';
import type { Result } from '../../src/invoke/result.js';
import { mintCa, mintLeaf, type MintedCert } from '../../src/pki/mint.js';
import { opensslPkcs12 } from '../helpers/pki.js';
import { useProfilesFixture } from '../helpers/profiles-fixture.js';
import { startMtlsServer, startOpensslServer, type MtlsServer, type OpensslServer, type TestServer } from '../helpers/servers.js';

const DAY = 86_400_000;
const TIMEOUTS = { connectMs: 2_000, handshakeMs: 3_000, responseMs: 3_000 };
const P12_PASS = 'p12-Pass phrase:42';

const fx = useProfilesFixture();

let ecClient: MintedCert;
let node12: MtlsServer;
let node13: MtlsServer;
let ossl12: OpensslServer;
let ossl13: OpensslServer;

function node(url: string, profile: string): NodeDefinition {
  return { id: `client-${profile}`, request: { method: 'GET', url }, tls: { profile }, timeouts: TIMEOUTS, retry: { limit: 0 } };
}

const url = (s: TestServer): string => `https://localhost:${s.port}/`;

function expectFailure(r: Result, category: string, codes?: string[]): void {
  expect(r.ok).toBe(false);
  expect(r.failure?.category, JSON.stringify(r.failure)).toBe(category);
  expect(r.failure?.phase).toBe('tls');
  if (codes) expect(codes, JSON.stringify(r.failure)).toContain(r.failure?.code);
  expect(r.response).toBeNull();
}

function expectOk(r: Result): void {
  expect(r.failure, JSON.stringify(r.failure)).toBeNull();
  expect(r.response?.status).toBe(200);
}

function load(name: string, doc?: ProfileDocument, env: NodeJS.ProcessEnv = {}): Promise<void> {
  return fx.load(name, doc, { env });
}

beforeAll(async () => {
  const { pki } = fx;
  const now = Date.now();
  const rogueRoot = await mintCa({ subject: 'CN=Rogue Root,O=elsewhere' });
  const [rogue, expired] = await Promise.all([
    // Same subject as the real client, issued by a CA the servers do not trust.
    mintLeaf({ subject: 'CN=svcnode-bot,O=svcnode tests', issuer: rogueRoot, usage: 'client' }),
    mintLeaf({ subject: 'CN=svcnode-bot-expired,O=svcnode tests', issuer: pki.intermediate, usage: 'client', notBefore: new Date(now - 30 * DAY), notAfter: new Date(now - DAY) }),
  ]);
  ecClient = await mintLeaf({ subject: 'CN=svcnode-bot-ec,O=svcnode tests', issuer: pki.intermediate, usage: 'client', key: { type: 'ec', curve: 'P-256' } });

  const trust = { ca: [pki.files.root] };
  await load('bank');
  await load('rogue', { client: { certificate: pki.write('rogue.pem', rogue.certPem), key: pki.write('rogue.key', rogue.keyPem) }, trust });
  await load('none', { trust });
  await load('expired', { client: { certificate: pki.write('expired-chain.pem', expired.certPem, pki.intermediate.certPem), key: pki.write('expired.key', expired.keyPem) }, trust });
  await load('ec', { client: { certificate: pki.write('ec-chain.pem', ecClient.certPem, pki.intermediate.certPem), key: pki.write('ec.key', ecClient.keyPem) }, trust });

  const chain = [pki.files.clientCert, pki.files.intermediate];
  const env = { P12_PASS };
  const p12 = (file: string, legacy: boolean): string => opensslPkcs12({ certFiles: chain, keyFile: pki.files.clientKey, out: join(pki.dir, file), passphrase: P12_PASS, legacy });
  await load('p12-modern', { client: { pkcs12: p12('bot.p12', false), passphrase: { env: 'P12_PASS' } }, trust }, env);
  await load('p12-legacy', { client: { pkcs12: p12('bot-legacy.pfx', true), passphrase: { env: 'P12_PASS' } }, trust }, env);
  const ecFile = pki.write('ec.pem', ecClient.certPem);
  const ecKey = pki.write('ec-key.pem', ecClient.keyPem);
  const ecP12 = opensslPkcs12({ certFiles: [ecFile, pki.files.intermediate], keyFile: ecKey, out: join(pki.dir, 'ec.p12'), passphrase: P12_PASS });
  await load('p12-ec', { client: { pkcs12: ecP12, passphrase: { env: 'P12_PASS' } }, trust }, env);

  const serverChain = pki.server.certPem + pki.intermediate.certPem;
  const track = <T extends TestServer>(s: T): T => fx.track(s);
  const openssl = (tls: '1.2' | '1.3'): Promise<OpensslServer> =>
    startOpensslServer({ certFile: pki.files.serverCert, keyFile: pki.files.serverKey, chainFile: pki.files.intermediate, caFile: pki.files.root, verify: 'require', tls });
  [node12, node13, ossl12, ossl13] = await Promise.all([
    startMtlsServer({ key: pki.server.keyPem, cert: serverChain, ca: pki.root.certPem, maxVersion: 'TLSv1.2' }).then(track),
    startMtlsServer({ key: pki.server.keyPem, cert: serverChain, ca: pki.root.certPem, minVersion: 'TLSv1.3' }).then(track),
    openssl('1.2').then(track),
    openssl('1.3').then(track),
  ]);
});

describe('client_cert_rejected (certificate from a CA the backend does not trust)', () => {
  it('TLS 1.3, OpenSSL server: alert after the handshake', async () => {
    const r = await invoke(node(url(ossl13), 'rogue'), {}, fx.deps);
    expectFailure(r, 'client_cert_rejected', ['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA']);
    expect(r.tls?.protocol).toBe('TLSv1.3'); // the verdict came after secureConnect
  });

  it('TLS 1.3, Node server: bare close after the handshake', async () => {
    const before = node13.requests;
    const r = await invoke(node(url(node13), 'rogue'), {}, fx.deps);
    expectFailure(r, 'client_cert_rejected', ['ECONNRESET', 'ERR_STREAM_PREMATURE_CLOSE', 'EPIPE']);
    expect(node13.requests).toBe(before);
  });

  /** Under TLS 1.2 the verdict comes before the handshake ends: the Result still shows what was presented and sent. */
  const expectTls12Report = (r: Awaited<ReturnType<typeof invoke>>): void => {
    expect(r.tls).toMatchObject({ protocol: 'TLSv1.2', sessionReused: false, connectionReused: false });
    expect(r.tls?.cipher).toEqual(expect.any(String));
    expect(r.tls?.serverChain.map((c) => c.subject).slice(0, 2)).toEqual(['CN=localhost, O=svcnode tests', expect.stringContaining('Intermediate')]);
    expect(r.tls?.clientCertificate?.subject).toBe('CN=svcnode-bot, O=svcnode tests');
    expect(r.tls?.clientCertificate?.fingerprint256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  };

  it('TLS 1.2, OpenSSL server: alert during the handshake; the chain presented and the certificate sent are reported', async () => {
    const r = await invoke(node(url(ossl12), 'rogue'), {}, fx.deps);
    expectFailure(r, 'client_cert_rejected', ['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA']);
    expectTls12Report(r);
  });

  it('TLS 1.2, Node server: reset during the handshake; the same report', async () => {
    const r = await invoke(node(url(node12), 'rogue'), {}, fx.deps);
    expectFailure(r, 'client_cert_rejected', ['ECONNRESET']);
    expectTls12Report(r);
  });
});

describe('client_cert_required (profile without client)', () => {
  it.each([
    ['TLS 1.2, Node server', () => node12],
    ['TLS 1.3, Node server', () => node13],
    ['TLS 1.2, OpenSSL server', () => ossl12],
    ['TLS 1.3, OpenSSL server', () => ossl13],
  ] as const)('%s', async (_label, server) => {
    const r = await invoke(node(url(server()), 'none'), {}, fx.deps);
    expectFailure(r, 'client_cert_required', ['ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE']);
    expect(r.tls?.clientCertificate ?? null).toBeNull();
  });
});

describe('client_cert_expired', () => {
  it('an expired client certificate is never presented: no connection is made', async () => {
    expect(fx.profiles.get('expired')?.findings.some((f) => f.severity === 'error')).toBe(true);
    const server = await startMtlsServer({ key: fx.pki.server.keyPem, cert: fx.pki.server.certPem + fx.pki.intermediate.certPem, ca: fx.pki.root.certPem });
    fx.track(server);
    const r = await invoke(node(url(server), 'expired'), {}, fx.deps);
    expectFailure(r, 'client_cert_expired');
    expect(server.tcpConnections).toBe(0);
    expect(fx.agents.size).toBe(0);
  });
});

describe('pass: the backend accepts our certificate', () => {
  const cases = [
    ['PEM, RSA key', 'bank', 'CN=svcnode-bot'],
    ['PEM, EC P-256 key', 'ec', 'CN=svcnode-bot-ec'],
    ['PKCS#12 (OpenSSL 3 default, AES)', 'p12-modern', 'CN=svcnode-bot'],
    ['PKCS#12 legacy (RC2/3DES, openssl -legacy)', 'p12-legacy', 'CN=svcnode-bot'],
    ['PKCS#12 with an EC P-256 key', 'p12-ec', 'CN=svcnode-bot-ec'],
  ] as const;

  it.each(cases)('%s, TLS 1.3 Node server', async (_label, profile, cn) => {
    const r = await invoke(node(url(node13), profile), {}, fx.deps);
    expectOk(r);
    const expected = profile.includes('ec') ? ecClient.cert.fingerprint256 : fx.pki.client.cert.fingerprint256;
    // The server verified leaf → intermediate → root: the intermediate was sent with the leaf.
    expect(node13.clientFingerprints.at(-1)).toBe(expected);
    expect(r.tls?.clientCertificate?.subject).toContain(cn);
    expect(r.tls?.clientCertificate?.fingerprint256).toBe(expected);
  });

  it.each(cases)('%s, TLS 1.2 OpenSSL server', async (_label, profile) => {
    const r = await invoke(node(url(ossl12), profile), {}, fx.deps);
    expectOk(r);
    expect(r.tls?.protocol).toBe('TLSv1.2');
  });
});
