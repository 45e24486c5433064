import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadProfile } from '../../src/definitions/profiles.js';
import { runCli } from '../helpers/cli.js';
import { mintLeaf } from '../../src/pki/mint.js';
import { createTestPki, multiIdentityPkcs12, opensslPkcs12, type TestPki } from '../helpers/pki.js';
import { assertNoSecrets } from '../helpers/secrets.js';

describe('svcnode certs import (base64 payload on stdin)', () => {
  let pki: TestPki;
  const passphrase = 'imp0rt-Pass phrase';
  let p12base64: string;

  beforeAll(async () => {
    pki = await createTestPki();
    const p12 = opensslPkcs12({ certFiles: [pki.files.clientCert, pki.files.intermediate], keyFile: pki.files.clientKey, out: join(pki.dir, 'device.p12'), passphrase, legacy: true });
    p12base64 = readFileSync(p12).toString('base64').replace(/(.{64})/g, '$1\n');
  });
  afterAll(async () => pki?.cleanup());

  it('writes a normalised profile (files 0600, key still encrypted) and prints status and validity', async () => {
    const profiles = join(pki.dir, 'imported');
    const r = await runCli(['certs', 'import', '--name', 'device', '--profiles', profiles, '--passphrase-env', 'DEVICE_PASS', '--trust', pki.files.root, '--json'], { input: p12base64, env: { DEVICE_PASS: passphrase } });
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { status: string; subject: string; validFrom: string; validTo: string; files: string[] };
    expect(out.status).toBe('valid');
    expect(out.subject).toContain('CN=svcnode-bot');
    expect(Date.parse(out.validTo)).toBe(new Date(pki.client.cert.validTo).getTime());
    for (const file of out.files) expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(profiles, 'device', 'client.key'), 'utf8')).toMatch(/^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
    assertNoSecrets(r.stdout + r.stderr, [passphrase]);

    const profile = await loadProfile(join(profiles, 'device.json'), { env: { DEVICE_PASS: passphrase } });
    expect(profile.client?.leaf.fingerprint256).toBe(pki.client.cert.fingerprint256);
    expect(profile.client?.chain.map((c) => c.fingerprint256)).toEqual([pki.intermediate.cert.fingerprint256]);
    expect(profile.trust.certificates.map((c) => c.fingerprint256)).toEqual([pki.root.cert.fingerprint256]);

    const again = await runCli(['certs', 'import', '--name', 'device', '--profiles', profiles, '--passphrase-env', 'DEVICE_PASS'], { input: p12base64, env: { DEVICE_PASS: passphrase } });
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('--force');
  });

  it('imports a base64 PEM payload without a passphrase', async () => {
    const payload = Buffer.from(pki.client.certPem + pki.intermediate.certPem + pki.client.keyPem).toString('base64');
    const r = await runCli(['certs', 'import', '--name', 'pem-device', '--profiles', join(pki.dir, 'imported')], { input: payload });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/status\s+VALID/);
    assertNoSecrets(r.stdout + r.stderr, []);
  });

  it('rejects a corrupt payload and a wrong passphrase with exit 2 and a stable code', async () => {
    const corrupt = await runCli(['certs', 'import', '--name', 'x', '--profiles', join(pki.dir, 'bad')], { input: 'not a payload!' });
    expect(corrupt.code).toBe(2);
    expect(corrupt.stderr).toContain('SVCNODE_INVALID_BUNDLE');
    // The .p12 file itself piped in (before: "the payload is neither PEM nor base64").
    const binary = await runCli(['certs', 'import', '--name', 'z', '--profiles', join(pki.dir, 'bad'), '--passphrase-env', 'P'], { input: readFileSync(join(pki.dir, 'device.p12')), env: { P: passphrase } });
    expect(binary.code).toBe(2);
    expect(binary.stderr).toContain('<stdin>: a binary PKCS#12 file, where the command reads its base64');
    expect(binary.stderr).toContain('base64 -w0 FILE.p12 | svcnode certs import');
    const wrong = await runCli(['certs', 'import', '--name', 'y', '--profiles', join(pki.dir, 'bad'), '--passphrase-env', 'P'], { input: p12base64, env: { P: 'wrong' } });
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain('SVCNODE_BAD_PASSPHRASE');
    assertNoSecrets(wrong.stdout + wrong.stderr, [passphrase]);
  });

  it('refuses a PKCS#12 payload with two identities, naming both, and writes nothing', async () => {
    const second = await mintLeaf({ subject: 'CN=second-bot', issuer: pki.intermediate, usage: 'client' });
    const file = multiIdentityPkcs12(join(pki.dir, 'two.p12'), [pki.client, second], passphrase);
    const profiles = join(pki.dir, 'two-imported');
    const r = await runCli(['certs', 'import', '--name', 'two', '--profiles', profiles, '--passphrase-env', 'P'], { input: readFileSync(file).toString('base64'), env: { P: passphrase } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('<stdin>: the PKCS#12 file holds 2 private keys (client identities: CN=svcnode-bot, O=svcnode tests; CN=second-bot)');
    expect(existsSync(join(profiles, 'two.json'))).toBe(false);
  });

  it('accepts unambiguous wrappers: a data: URL, a JSON string, a JSON string with \\n escapes', async () => {
    const compact = p12base64.replace(/\n/g, '');
    const payloads = {
      'data-url': `data:application/x-pkcs12;base64,${compact}`,
      'json-string': `"${compact}"\n`,
      'json-escapes': JSON.stringify(readFileSync(join(pki.dir, 'device.p12')).toString('base64').replace(/(.{76})/g, '$1\n')),
      'json-pem': JSON.stringify(pki.client.certPem + pki.intermediate.certPem + pki.client.keyPem),
    };
    expect(payloads['json-escapes']).toContain('\\n');
    for (const [name, input] of Object.entries(payloads)) {
      const r = await runCli(['certs', 'import', '--name', name, '--profiles', join(pki.dir, 'wrapped'), '--passphrase-env', 'P', '--json'], { input, env: { P: passphrase } });
      expect(r.code, `${name}: ${r.stderr}`).toBe(0);
      expect((JSON.parse(r.stdout) as { subject: string }).subject).toContain('CN=svcnode-bot');
      assertNoSecrets(r.stdout + r.stderr, [passphrase]);
    }
    const broken = await runCli(['certs', 'import', '--name', 'broken-json', '--profiles', join(pki.dir, 'wrapped')], { input: `"${compact}\\q"` });
    expect(broken.code).toBe(2);
    expect(broken.stderr).toContain('not a valid JSON string');
  });

  it('names its own --passphrase-env / --passphrase-file when an encrypted payload comes without one', async () => {
    const r = await runCli(['certs', 'import', '--name', 'nopass', '--profiles', join(pki.dir, 'bad')], { input: p12base64 });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('SVCNODE_MISSING_PASSPHRASE');
    expect(r.stderr).toContain('certs import --passphrase-env');
    expect(r.stderr).toContain('--passphrase-file');
    expect(r.stderr).not.toContain('certs inspect');
    expect(r.stderr).not.toContain('client section');
  });
});
