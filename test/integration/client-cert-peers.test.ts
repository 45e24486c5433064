/**
 * Why a client certificate was not accepted, against the servers banks run, each checked against
 * the server's own verdict (its log or answer): openssl s_server and nginx limited to signature
 * algorithms our key cannot make (OpenSSL then sends no certificate at all), haproxy (`verify
 * required`, and `verify optional` with an ACL answering 403), and Apache mod_ssl asking for the
 * certificate for one path only, by TLS 1.2 renegotiation (or TLS 1.3 post-handshake auth).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import type { NodeDefinition, ProfileDocument } from '../../src/definitions/types.js';
import { checkHandshake } from '../../src/invoke/handshake-check.js';
import { formatHandshakeReport } from '../../src/cli/report.js';
import { invoke } from '../../src/invoke/execute.js';
import type { Result } from '../../src/invoke/result.js';
import { mintCa, mintLeaf, type MintedCert } from '../../src/pki/mint.js';
import { AgentPool } from '../../src/tls/agents.js';
import type { IdleLearned } from '../../src/tls/idle-limit.js';
import { runCli } from '../helpers/cli.js';
import { installed, startAclServer, startApache, startHaproxy, type AclServer, type Gateway } from '../helpers/cert-gateways.js';
import { startNginx, type Nginx } from '../helpers/peers.js';
import { waitFor } from '../helpers/net.js';
import { useProfilesFixture } from '../helpers/profiles-fixture.js';
import { startOpensslServer, type OpensslServer } from '../helpers/servers.js';

const DAY = 86_400_000;
const TIMEOUTS = { connectMs: 3_000, handshakeMs: 3_000, responseMs: 3_000 };
const HAPROXY = installed('haproxy');
const APACHE = installed('apache2');

const fx = useProfilesFixture();

let expired: MintedCert;
let rsaOnly: OpensslServer;
let ecdsaOnly: OpensslServer;
let nginxRsaOnly: Nginx;
let rsaOnlyOptional: OpensslServer;
let aclServer: AclServer;
let haproxy: Gateway | undefined;
let apache: Gateway | undefined;

function node(port: number, profile: string, path = '/', tls: Partial<NodeDefinition['tls']> = {}): NodeDefinition {
  return { id: `peer-${profile}`, request: { method: 'GET', url: `https://localhost:${port}${path}` }, tls: { profile, ...tls }, timeouts: TIMEOUTS, retry: { limit: 0 } };
}

function expectFailure(r: Result, category: string, code?: string): void {
  expect(r.ok).toBe(false);
  expect(r.failure?.category, JSON.stringify(r.failure)).toBe(category);
  if (code) expect(r.failure?.code, JSON.stringify(r.failure)).toBe(code);
}

/** The verdict that a key of the wrong type sent no certificate: the accepted algorithms, our key, what to do. */
function expectKeyTypeVerdict(r: Result, sigalgs: string, key: string, wanted: string): void {
  expectFailure(r, 'client_cert_rejected');
  expect(r.failure?.message).toContain(`signed only with ${sigalgs}`);
  expect(r.failure?.message).toContain(`is ${key}: no client certificate was sent`);
  expect(r.failure?.hint).toContain(`a client certificate whose key is ${wanted}`);
  expect(r.failure?.hint).not.toMatch(/trusts the CA|register the client certificate/);
  // Nothing was sent, and the Result does not claim otherwise.
  expect(r.tls?.clientCertificate ?? null).toBeNull();
}

beforeAll(async () => {
  const { pki } = fx;
  const now = Date.now();
  const rogueRoot = await mintCa({ subject: 'CN=Rogue Root,O=elsewhere' });
  const [rogue, ec, ec384, serverOnly, old] = await Promise.all([
    mintLeaf({ subject: 'CN=svcnode-bot,O=svcnode tests', issuer: rogueRoot, usage: 'client' }),
    mintLeaf({ subject: 'CN=svcnode-bot-ec,O=svcnode tests', issuer: pki.intermediate, usage: 'client', key: { type: 'ec', curve: 'P-256' } }),
    mintLeaf({ subject: 'CN=svcnode-bot-p384,O=svcnode tests', issuer: pki.intermediate, usage: 'client', key: { type: 'ec', curve: 'P-384' } }),
    // What a PKI team issues from the web-server template: extendedKeyUsage serverAuth only.
    mintLeaf({ subject: 'CN=svcnode-bot-web,O=svcnode tests', issuer: pki.intermediate, usage: 'server', dnsNames: ['svcnode-bot.example'] }),
    mintLeaf({ subject: 'CN=svcnode-bot-expired,O=svcnode tests', issuer: pki.intermediate, usage: 'client', notBefore: new Date(now - 30 * DAY), notAfter: new Date(now - DAY) }),
  ]);
  expired = old;
  const trust = { ca: [pki.files.root] };
  const withClient = async (name: string, cert: MintedCert, chain = [pki.intermediate.certPem]): Promise<void> =>
    fx.load(name, { client: { certificate: pki.write(`${name}-chain.pem`, cert.certPem, ...chain), key: pki.write(`${name}.key`, cert.keyPem) }, trust });
  await Promise.all([
    fx.load('bank'),
    fx.load('none', { trust }),
    withClient('rogue', rogue, []),
    withClient('ec', ec),
    withClient('p384', ec384),
    withClient('web-template', serverOnly),
    withClient('expired', expired),
  ]);

  const openssl = (sigalgs: string, verify: 'require' | 'request' = 'require'): Promise<OpensslServer> =>
    startOpensslServer({ certFile: pki.files.serverCert, keyFile: pki.files.serverKey, chainFile: pki.files.intermediate, caFile: pki.files.root, verify, tls: 'both', extraArgs: ['-client_sigalgs', sigalgs] }).then((s) => fx.track(s));
  // haproxy's `verify optional` + ACL with the client signature algorithms limited to RSA, which haproxy 2.6 cannot configure.
  aclServer = fx.track(await startAclServer({ key: pki.server.keyPem, cert: pki.server.certPem + pki.intermediate.certPem, ca: pki.root.certPem, sigalgs: 'rsa_pss_rsae_sha256:rsa_pkcs1_sha256' }));
  [rsaOnly, ecdsaOnly, rsaOnlyOptional, nginxRsaOnly, haproxy, apache] = await Promise.all([
    openssl('RSA-PSS+SHA256:rsa_pkcs1_sha256'),
    openssl('ECDSA+SHA256'),
    openssl('RSA-PSS+SHA256:rsa_pkcs1_sha256', 'request'),
    startNginx({ certFile: pki.files.serverChain, keyFile: pki.files.serverKey, clientCaFile: pki.files.root, serverConf: 'ssl_conf_command ClientSignatureAlgorithms RSA-PSS+SHA256:RSA+SHA256;' }).then((s) => fx.track(s)),
    HAPROXY ? startHaproxy({ certKeyFile: pki.write('server-with-key.pem', pki.server.certPem, pki.intermediate.certPem, pki.server.keyPem), caFile: pki.files.root }).then((s) => fx.track(s)) : undefined,
    APACHE ? startApache({ certFile: pki.files.serverChain, keyFile: pki.files.serverKey, caFile: pki.files.root }).then((s) => fx.track(s)) : undefined,
  ]);
}, 30_000);

describe('a key type the server does not accept (openssl s_server -client_sigalgs): no certificate is sent', () => {
  it('EC P-256 key, server accepts only RSA signatures, TLS 1.3: not "untrusted CA", and tls.clientCertificate is null', async () => {
    const r = await invoke(node(rsaOnly.port, 'ec'), {}, fx.deps);
    expect(r.failure?.code).toBe('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED');
    expectKeyTypeVerdict(r, 'RSA-PSS+SHA256, RSA+SHA256', 'EC P-256', 'RSA');
    expect(r.tls?.protocol).toBe('TLSv1.3');
    await waitFor(() => rsaOnly.output().includes('peer did not return a certificate'), 3_000, 20, 's_server: peer did not return a certificate');
  });

  it('the same under TLS 1.2 (the alert comes before the handshake ends)', async () => {
    const r = await invoke(node(rsaOnly.port, 'ec', '/', { maxVersion: 'TLSv1.2' }), {}, fx.deps);
    expect(r.failure?.code).toBe('ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE');
    expectKeyTypeVerdict(r, 'RSA-PSS+SHA256, RSA+SHA256', 'EC P-256', 'RSA');
  });

  it('the reverse: RSA key, server accepts only ECDSA, TLS 1.3 and 1.2', async () => {
    expectKeyTypeVerdict(await invoke(node(ecdsaOnly.port, 'bank'), {}, fx.deps), 'ECDSA+SHA256', 'RSA 2048', 'EC P-256');
    expectKeyTypeVerdict(await invoke(node(ecdsaOnly.port, 'bank', '/', { maxVersion: 'TLSv1.2' }), {}, fx.deps), 'ECDSA+SHA256', 'RSA 2048', 'EC');
  });

  it('TLS 1.3 binds ECDSA+SHA256 to P-256: a P-384 key sends nothing; under TLS 1.2 the same key passes', async () => {
    expectKeyTypeVerdict(await invoke(node(ecdsaOnly.port, 'p384'), {}, fx.deps), 'ECDSA+SHA256', 'EC P-384', 'EC P-256');
    const passed = await invoke(node(ecdsaOnly.port, 'p384', '/', { maxVersion: 'TLSv1.2' }), {}, fx.deps);
    expect(passed.failure, JSON.stringify(passed.failure)).toBeNull();
    expect(passed.tls?.clientCertificate?.subject).toContain('svcnode-bot-p384');
  });

  it('an EC brainpoolP256r1 key (EU bank PKIs) against a plain TLS 1.3 server: certs verify warns, the verdict says TLS 1.2 signs with it, and under TLS 1.2 it passes', async () => {
    const { pki } = fx;
    const key = join(pki.dir, 'brainpool.key');
    const csr = join(pki.dir, 'brainpool.csr');
    const cert = join(pki.dir, 'brainpool.pem');
    const intermediateKey = pki.write('intermediate.key', pki.intermediate.keyPem);
    const ext = pki.write('brainpool.ext', 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature');
    execFileSync('openssl', ['ecparam', '-name', 'brainpoolP256r1', '-genkey', '-noout', '-out', key]);
    execFileSync('openssl', ['req', '-new', '-key', key, '-subj', '/CN=svcnode-bot-brainpool', '-out', csr]);
    execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', pki.files.intermediate, '-CAkey', intermediateKey, '-CAcreateserial', '-days', '30', '-extfile', ext, '-out', cert], { stdio: ['ignore', 'ignore', 'pipe'] });
    const profile = pki.profile('brainpool', { client: { certificate: pki.write('brainpool-chain.pem', readFileSync(cert, 'utf8'), pki.intermediate.certPem), key }, trust: { ca: [pki.files.root] } });
    const verify = await runCli(['certs', 'verify', profile, '--json']);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    expect(verify.stdout).toContain('TLS12_ONLY_CLIENT_KEY');
    await fx.load('brainpool', JSON.parse(readFileSync(profile, 'utf8')) as ProfileDocument);
    // A server of such a PKI accepts the curve (OpenSSL's default groups leave brainpool out).
    const plain = fx.track(await startOpensslServer({ certFile: pki.files.serverCert, keyFile: pki.files.serverKey, chainFile: pki.files.intermediate, caFile: pki.files.root, verify: 'require', tls: 'both', extraArgs: ['-groups', 'X25519:P-256:P-384:brainpoolP256r1'] }));
    const r = await invoke(node(plain.port, 'brainpool'), {}, fx.deps);
    expectFailure(r, 'client_cert_rejected');
    expect(r.failure?.message).toContain('is EC brainpoolP256r1: no client certificate was sent');
    expect(r.failure?.hint).toContain('set tls.maxVersion: "TLSv1.2" on the node');
    expect(r.failure?.hint).not.toMatch(/trusts the CA/);
    const tls12 = await invoke(node(plain.port, 'brainpool', '/', { maxVersion: 'TLSv1.2' }), {}, fx.deps);
    expect(tls12.failure, JSON.stringify(tls12.failure)).toBeNull();
    expect(tls12.tls?.clientCertificate?.subject).toContain('svcnode-bot-brainpool');
  });

  it('nginx (ssl_conf_command ClientSignatureAlgorithms, RSA only) answers 400 "No required SSL certificate was sent": the key type, not "rejected"', async () => {
    const r = await invoke(node(nginxRsaOnly.port, 'ec', '/json'), {}, fx.deps);
    expect(r.response?.status).toBe(400);
    expect(r.failure?.code).toBe('HTTP_400');
    expectKeyTypeVerdict(r, 'RSA-PSS+SHA256, RSA+SHA256', 'EC P-256', 'RSA');
    expect(r.failure?.message).toContain('it answered 400');
    const control = await invoke(node(nginxRsaOnly.port, 'bank', '/json'), {}, fx.deps);
    expect(control.failure, JSON.stringify(control.failure)).toBeNull();
  });

  it('a server that only asks (s_server -verify) lets the handshake through: the call passes, and tls.clientCertificate is null', async () => {
    const r = await invoke(node(rsaOnlyOptional.port, 'ec'), {}, fx.deps);
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(r.tls?.clientCertificate).toBeNull();
    expect(r.response?.body).toContain('no client certificate available');
  });

  it('a server that only asks and answers 403 without a verified certificate: the key type, HTTP_403', async () => {
    const r = await invoke(node(aclServer.port, 'ec'), {}, fx.deps);
    expect(r.response?.status).toBe(403);
    expect(r.failure?.code).toBe('HTTP_403');
    expectKeyTypeVerdict(r, 'RSA-PSS+SHA256, RSA+SHA256', 'EC P-256', 'RSA');
    expect(r.failure?.message).toContain('it answered 403');
    expect(aclServer.certificates.at(-1)).toBe(false);
    const control = await invoke(node(aclServer.port, 'bank'), {}, fx.deps);
    expect(control.failure, JSON.stringify(control.failure)).toBeNull();
    expect(aclServer.certificates.at(-1)).toBe(true);
  });

  it('dry-run --tls-only says the same', async () => {
    const r = await checkHandshake(node(rsaOnly.port, 'ec'), {}, fx.deps);
    expectKeyTypeVerdict(r, 'RSA-PSS+SHA256, RSA+SHA256', 'EC P-256', 'RSA');
    expect(r.handshake.clientCertificateRequested).toBe(true);
  });

  it('controls: a key of an accepted type passes and is reported as sent', async () => {
    for (const [server, profile] of [[rsaOnly, 'bank'], [ecdsaOnly, 'ec']] as const) {
      const r = await invoke(node(server.port, profile), {}, fx.deps);
      expect(r.failure, JSON.stringify(r.failure)).toBeNull();
      expect(r.tls?.clientCertificate).not.toBeNull();
    }
  });
});

describe.skipIf(!HAPROXY)(`haproxy as the mTLS backend${HAPROXY ? '' : ' (skipped: haproxy is not installed; .ci/run installs it)'}`, () => {
  const port = (name: string): number => haproxy?.ports[name] ?? 0;
  const logged = (pattern: RegExp): Promise<boolean> => waitFor(() => pattern.test(haproxy?.log() ?? ''), 3_000, 20, `haproxy log ${pattern}`);

  it('pass: haproxy logs the certificate as used and verified', async () => {
    const r = await invoke(node(port('required'), 'bank'), {}, fx.deps);
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(r.tls?.clientCertificate?.subject).toContain('svcnode-bot');
    await logged(/required used=1 err=0 verify=0 200/);
  });

  it('timeout http-keep-alive 1500 (not announced): the first idle close teaches the agent, its next connections close first', async () => {
    const learned: IdleLearned[] = [];
    const agents = new AgentPool({ onIdleLearned: (l) => learned.push(l) });
    const deps = { ...fx.deps, agents };
    try {
      const n = node(port('shortIdle'), 'bank');
      expect((await invoke(n, {}, deps)).failure).toBeNull();
      await sleep(2_000);
      expect((await invoke(n, {}, deps)).tls?.connectionReused).toBe(false);
      expect(learned).toHaveLength(1);
      expect(learned[0]?.idleMs).toBeGreaterThanOrEqual(1_400);
      // Idle 1.2 s: haproxy would still keep it; svcnode closed it at 3/4 of what haproxy allowed.
      await sleep(1_200);
      const r = await invoke(n, {}, deps);
      expect(r.failure, JSON.stringify(r.failure)).toBeNull();
      expect(r.tls?.connectionReused).toBe(false);
      await sleep(300);
      expect((await invoke(n, {}, deps)).tls?.connectionReused).toBe(true);
    } finally {
      agents.destroy();
    }
  });

  it('a TCP-mode front end whose server is down accepts and closes: the hint names a load balancer without a healthy server, beside SNI and ciphers', async () => {
    const r = await invoke(node(port('tcpNoServer'), 'bank'), {}, fx.deps);
    expectFailure(r, 'connect_failed');
    expect(r.failure?.message).toContain('closed the connection during the TLS handshake, before answering');
    expect(r.failure?.hint).toContain('a TCP load balancer or port-forward (haproxy in TCP mode, a Kubernetes Service) with no healthy server behind it');
  });

  it('verify required, no certificate: client_cert_required', async () => {
    const r = await invoke(node(port('required'), 'none'), {}, fx.deps);
    expectFailure(r, 'client_cert_required');
    expect(r.failure?.hint).toContain('add client.certificate');
  });

  it('verify optional + ACL, no certificate: haproxy answers 403, which is client_cert_required, not a plain HTTP 403', async () => {
    const r = await invoke(node(port('optional'), 'none'), {}, fx.deps);
    expectFailure(r, 'client_cert_required', 'HTTP_403');
    expect(r.response?.status).toBe(403);
    expect(r.failure?.hint).toBe('add a client certificate to profile "none"');
    await logged(/optional used=0 err=0 verify=0 403/);
  });

  it('a certificate from a CA haproxy does not trust: client_cert_rejected, register the CA', async () => {
    for (const frontend of ['required', 'optional']) {
      const r = await invoke(node(port(frontend), 'rogue'), {}, fx.deps);
      expectFailure(r, 'client_cert_rejected', 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA');
      expect(r.failure?.hint).toContain('register the client certificate (or its issuing CA)');
    }
    await logged(/optional\/1: SSL client certificate not trusted/);
  });

  it('an expired certificate is not presented; with our clock behind, haproxy rejects it as expired', async () => {
    const refused = await invoke(node(port('required'), 'expired'), {}, fx.deps);
    expectFailure(refused, 'client_cert_expired', 'SVCNODE_CLIENT_CERT_EXPIRED');
    const skewed = { ...fx.deps, now: () => new Date(new Date(expired.cert.validTo).getTime() - DAY) };
    const r = await invoke(node(port('required'), 'expired'), {}, skewed);
    expectFailure(r, 'client_cert_expired', 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED');
    // By our (skewed) clock the leaf is valid but its intermediate, minted an hour ago, is not yet: the hint says what this clock sees.
    expect(r.failure?.hint).toMatch(/^the CA certificate "CN=svcnode Test Intermediate, O=svcnode tests" sent with our client certificate is not valid before /);
  });

  it('extendedKeyUsage serverAuth only: the hint names the missing clientAuth, not the CA', async () => {
    const r = await invoke(node(port('required'), 'web-template'), {}, fx.deps);
    expectFailure(r, 'client_cert_rejected', 'ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE');
    expect(r.failure?.hint).toContain('allows only serverAuth, not clientAuth');
    expect(r.failure?.hint).toContain('ask the PKI team for a certificate with extendedKeyUsage clientAuth');
    await logged(/required\/1: SSL client certificate not trusted/);
  });
});

describe.skipIf(!APACHE)(`Apache mod_ssl: SSLVerifyClient require in a <Location> (renegotiation)${APACHE ? '' : ' (skipped: apache2 is not installed; .ci/run installs apache2-bin)'}`, () => {
  const port = (name: string): number => apache?.ports[name] ?? 0;
  const logged = (pattern: RegExp): Promise<boolean> => waitFor(() => pattern.test(apache?.log() ?? ''), 3_000, 20, `apache log ${pattern}`);
  const SECURE = '/secure/index.json';

  it('our certificate is presented on the renegotiation, and the Result says it was sent', async () => {
    const r = await invoke(node(port('tls12'), 'bank', SECURE), {}, fx.deps);
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(r.response?.body).toMatchObject({ secure: true });
    expect(r.tls?.clientCertificate?.subject).toContain('svcnode-bot');
    await logged(/GET \/secure\/index\.json HTTP\/1\.1 200 verify=SUCCESS dn=.*CN=svcnode-bot\b/);
  });

  it('dry-run --tls-only: the handshake asks for nothing, and the report says a renegotiation may still ask', async () => {
    const r = await checkHandshake(node(port('tls12'), 'bank', SECURE), {}, fx.deps);
    expect(r.failure).toBeNull();
    expect(r.handshake.clientCertificateRequested).toBe(false);
    expect(r.tls?.clientCertificate).toBeNull();
    expect(formatHandshakeReport(r)).toContain('TLS 1.2 renegotiation once it sees the request path');
  });

  it('a kept-alive connection whose first handshake asked for nothing: after /secure it reports the certificate as sent', async () => {
    const open = await invoke(node(port('tls12'), 'bank', '/index.json'), {}, fx.deps);
    expect(open.tls?.clientCertificate).toBeNull();
    const r = await invoke(node(port('tls12'), 'bank', SECURE), {}, fx.deps);
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(r.tls?.connectionReused).toBe(true);
    expect(r.tls?.clientCertificate?.subject).toContain('svcnode-bot');
  });

  it('a rejected certificate on a kept-alive connection: client_cert_rejected (not connect_failed), and it was sent', async () => {
    await invoke(node(port('tls12'), 'rogue', '/index.json'), {}, fx.deps);
    const r = await invoke(node(port('tls12'), 'rogue', SECURE), {}, fx.deps);
    expect(r.tls?.connectionReused).toBe(true);
    expectFailure(r, 'client_cert_rejected', 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA');
    expect(r.tls?.clientCertificate?.subject).toContain('svcnode-bot');
    await logged(/Certificate Verification: Error \(20\)/);
  });

  it('no certificate in the profile: client_cert_required', async () => {
    const r = await invoke(node(port('tls12'), 'none', SECURE), {}, fx.deps);
    expectFailure(r, 'client_cert_required');
    await logged(/peer did not return a certificate/);
  });

  it('extendedKeyUsage serverAuth only: Apache says "unsuitable certificate purpose", the hint names clientAuth', async () => {
    const r = await invoke(node(port('tls12'), 'web-template', SECURE), {}, fx.deps);
    expectFailure(r, 'client_cert_rejected', 'ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE');
    expect(r.failure?.hint).toContain('not clientAuth');
    await logged(/Certificate Verification: Error \(26\): unsuitable certificate purpose/);
  });

  it('a key type the renegotiation does not accept (ClientSignatureAlgorithms RSA only), EC key: named as such', async () => {
    const open = await invoke(node(port('rsaOnly'), 'ec', '/index.json'), {}, fx.deps);
    expect(open.failure).toBeNull();
    const r = await invoke(node(port('rsaOnly'), 'ec', SECURE), {}, fx.deps);
    expect(r.tls?.connectionReused).toBe(true);
    expectKeyTypeVerdict(r, 'RSA-PSS+SHA256, RSA+SHA256', 'EC P-256', 'RSA');
  });

  it('a POST body larger than the renegotiation buffer: Apache answers 413 before it renegotiates; the hint names the renegotiation', async () => {
    const post = (size: number): NodeDefinition => ({ ...node(port('tls12'), 'bank', SECURE), request: { method: 'POST', url: `https://localhost:${port('tls12')}${SECURE}`, body: { text: 'x'.repeat(size) } } });
    const r = await invoke(post(200_000), {}, fx.deps);
    expectFailure(r, 'http_status', 'HTTP_413');
    expect(r.failure?.message).toContain('TLS 1.2 renegotiation');
    expect(r.failure?.hint).toContain('require the certificate at the first handshake');
    expect(r.tls?.clientCertificate).toBeNull();
    await logged(/AH02018: request body exceeds maximum size \(131072\) for SSL buffer/);
    // A body within the buffer gets through the renegotiation (and so would the large one on the connection it authenticated).
    const small = await invoke(post(1_000), {}, fx.deps);
    expect(small.failure, JSON.stringify(small.failure)).toBeNull();
    expect(small.tls?.clientCertificate?.subject).toContain('svcnode-bot');
  });

  it('TLS 1.3 (post-handshake authentication, which Node does not offer): 403 with a hint that TLS 1.2 gets through, and it does', async () => {
    const r = await invoke(node(port('tls13'), 'bank', SECURE), {}, fx.deps);
    expectFailure(r, 'http_status', 'HTTP_403');
    expect(r.failure?.hint).toContain('tls.maxVersion: "TLSv1.2" on the node: the server then asks for the certificate by TLS 1.2 renegotiation');
    await logged(/cannot perform post-handshake authentication/);
    const fixed = await invoke(node(port('tls13'), 'bank', SECURE, { maxVersion: 'TLSv1.2' }), {}, fx.deps);
    expect(fixed.failure, JSON.stringify(fixed.failure)).toBeNull();
    expect(fixed.tls?.clientCertificate?.subject).toContain('svcnode-bot');
  });
});
