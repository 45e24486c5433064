import { execFileSync } from 'node:child_process';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintCa, mintLeaf } from '../../src/pki/mint.js';
import { describeCertificate } from '../../src/pki/inspect.js';
import { createTestPki, type KeySpec, type MintedCert, type TestPki } from '../helpers/pki.js';

/** One mutual-TLS request against a real Node https server; resolves with the client CN the server saw. */
async function mtls(o: { server: { key: string; cert: string; ca: string }; client: { key: string; cert: string; ca: string }; host?: string }): Promise<string> {
  const server = https.createServer({ ...o.server, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    res.end(String((req.socket as TLSSocket).getPeerCertificate().subject.CN));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const { port } = server.address() as AddressInfo;
    return await new Promise<string>((resolve, reject) => {
      https.get({ host: o.host ?? 'localhost', port, agent: false, ...o.client }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve(body));
      }).on('error', reject);
    });
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

describe.each<[string, KeySpec]>([
  ['RSA', { type: 'rsa', bits: 2048 }],
  ['EC P-256', { type: 'ec', curve: 'P-256' }],
])('createTestPki with %s leaves', (_label, key) => {
  let pki: TestPki;
  beforeAll(async () => {
    pki = await createTestPki({ clientKey: key, serverKey: key });
  });
  afterAll(() => pki.cleanup());

  it('completes a mutual-TLS request by name and by IP, with the intermediate sent by both sides', async () => {
    const server = { key: pki.server.keyPem, cert: pki.server.certPem + pki.intermediate.certPem, ca: pki.root.certPem };
    const client = { key: pki.client.keyPem, cert: pki.client.certPem + pki.intermediate.certPem, ca: pki.root.certPem };
    expect(await mtls({ server, client })).toBe('svcnode-bot');
    expect(await mtls({ server, client, host: '127.0.0.1' })).toBe('svcnode-bot');
  });

  it('writes files that openssl verifies for their purpose', () => {
    const verify = (purpose: string, file: string): string =>
      execFileSync('openssl', ['verify', '-CAfile', pki.files.root, '-untrusted', pki.files.intermediate, '-purpose', purpose, file]).toString();
    expect(verify('sslclient', pki.files.clientCert)).toContain(': OK');
    expect(verify('sslserver', pki.files.serverCert)).toContain(': OK');
  });
});

describe('mintCa / mintLeaf', () => {
  let root: MintedCert;
  beforeAll(async () => {
    root = await mintCa({ subject: 'CN=Unit Root,O=svcnode', key: { type: 'ec', curve: 'P-384' }, pathLength: 1 });
  });

  it('mints CAs with basicConstraints CA:true and keyCertSign, and leaves with EKU and SANs', async () => {
    const now = new Date();
    expect(describeCertificate(root.cert, now)).toMatchObject({ isCa: true, selfSigned: true, keyType: 'ec', curve: 'P-384', subject: 'CN=Unit Root, O=svcnode' });
    const leaf = await mintLeaf({ subject: 'CN=both', issuer: root, usage: 'both', dnsNames: ['a.example'], ipAddresses: ['10.0.0.1', '::1'] });
    const d = describeCertificate(leaf.cert, now);
    expect(d).toMatchObject({ isCa: false, selfSigned: false, keyType: 'rsa', keyBits: 2048, issuer: 'CN=Unit Root, O=svcnode' });
    expect(d.extKeyUsage).toEqual(['serverAuth', 'clientAuth']);
    expect(d.subjectAltNames).toEqual(['DNS:a.example', 'IP Address:10.0.0.1', 'IP Address:0:0:0:0:0:0:0:1']);
    expect(leaf.cert.checkIssued(root.cert) && leaf.cert.verify(root.cert.publicKey)).toBe(true);
    expect(leaf.keyPem).toMatch(/^-{5}BEGIN PRIVATE KEY-{5}\n/);
    expect(leaf.cert.checkPrivateKey(leaf.key)).toBe(true);
  });

  it('defaults to now − 1 h … now + 365 d and honours explicit dates', async () => {
    const before = Date.now();
    const leaf = await mintLeaf({ subject: 'CN=dates', issuer: root, usage: 'client' });
    const from = Date.parse(leaf.cert.validFrom);
    const to = Date.parse(leaf.cert.validTo);
    expect(Math.abs(from - (before - 3_600_000))).toBeLessThan(5_000);
    expect(Math.abs(to - (before + 365 * 86_400_000))).toBeLessThan(5_000);
    const fixed = await mintLeaf({ subject: 'CN=fixed', issuer: root, usage: 'client', notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2021-01-01T00:00:00Z') });
    expect(new Date(fixed.cert.validTo).toISOString()).toBe('2021-01-01T00:00:00.000Z');
  });

  it("'none' usage (codeSigning only) is refused by a TLS server as a client certificate", async () => {
    const pki = await createTestPki();
    try {
      const wrong = await mintLeaf({ subject: 'CN=signer', issuer: pki.intermediate, usage: 'none' });
      const server = { key: pki.server.keyPem, cert: pki.server.certPem + pki.intermediate.certPem, ca: pki.root.certPem };
      await expect(mtls({ server, client: { key: wrong.keyPem, cert: wrong.certPem + pki.intermediate.certPem, ca: pki.root.certPem } })).rejects.toThrow();
    } finally {
      await pki.cleanup();
    }
  });
});
