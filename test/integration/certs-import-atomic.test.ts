import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintLeaf } from '../../src/pki/mint.js';
import { runCli } from '../helpers/cli.js';
import { createTestPki, opensslPkcs12, type TestPki } from '../helpers/pki.js';
import { assertNoSecrets } from '../helpers/secrets.js';

/** `certs import` either writes a profile that loads, or leaves the profiles directory as it was. */

const PASS = 'At0mic-import pass';

/** Every file below `dir` with its bytes and mode, so "as it was" can be compared exactly. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, prefix: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      const mode = (statSync(path).mode & 0o777).toString(8);
      if (entry.isDirectory()) {
        out[`${prefix}${entry.name}/`] = mode;
        walk(path, `${prefix}${entry.name}/`);
      } else out[`${prefix}${entry.name}`] = `${mode} ${readFileSync(path).toString('base64')}`;
    }
  };
  walk(dir, '');
  return out;
}

describe('certs import writes nothing when it fails', () => {
  let pki: TestPki;
  let weak: TestPki;
  let goodPayload: string;
  let weakPayload: string;

  beforeAll(async () => {
    [pki, weak] = await Promise.all([createTestPki(), createTestPki({ clientKey: { type: 'rsa', bits: 1024 } })]);
    goodPayload = pki.client.certPem + pki.intermediate.certPem + pki.client.keyPem;
    weakPayload = weak.client.certPem + weak.intermediate.certPem + weak.client.keyPem;
  });
  afterAll(async () => Promise.all([pki?.cleanup(), weak?.cleanup()]));

  it('a 1024-bit key (refused by the profile load): exit 2 naming the payload, no files, and a plain re-run succeeds', async () => {
    const profiles = join(pki.dir, 'weak-new');
    const r = await runCli(['certs', 'import', '--name', 'weak', '--profiles', profiles], { input: weakPayload });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('SVCNODE_WEAK_KEY');
    expect(r.stderr).toContain('<stdin>: the RSA client key has 1024 bits');
    expect(r.stderr).not.toContain('.import-');
    expect(() => statSync(profiles)).toThrow(); // not even the directory it would have created
    assertNoSecrets(r.stdout + r.stderr, [weak.client.keyPem]);

    const again = await runCli(['certs', 'import', '--name', 'weak', '--profiles', profiles], { input: goodPayload });
    expect(again.code).toBe(0);
    expect(Object.keys(snapshot(profiles)).sort()).toEqual(['weak.json', 'weak/', 'weak/client-chain.pem', 'weak/client.key']);
    expect(statSync(join(profiles, 'weak')).mode & 0o777).toBe(0o700);
    expect(statSync(join(profiles, 'weak', 'client.key')).mode & 0o777).toBe(0o600);
  });

  it('in an existing profiles directory: a failure leaves other profiles alone and adds nothing', async () => {
    const profiles = join(pki.dir, 'existing');
    expect((await runCli(['certs', 'import', '--name', 'other', '--profiles', profiles], { input: goodPayload })).code).toBe(0);
    const before = snapshot(profiles);
    const notCa = pki.write('not-a-ca.pem', pki.client.keyPem); // a --trust file without a certificate
    const r = await runCli(['certs', 'import', '--name', 'fresh', '--profiles', profiles, '--trust', notCa], { input: goodPayload });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('SVCNODE_NO_CERTIFICATE');
    expect(r.stderr).toContain(notCa);
    expect(snapshot(profiles)).toEqual(before);
  });

  it('with --force over a working profile: a failed import leaves the previous files byte for byte', async () => {
    const profiles = join(pki.dir, 'forced');
    const p12 = opensslPkcs12({ certFiles: [pki.files.clientCert, pki.files.intermediate], keyFile: pki.files.clientKey, out: join(pki.dir, 'good.p12'), passphrase: PASS });
    const first = await runCli(['certs', 'import', '--name', 'bank', '--profiles', profiles, '--passphrase-env', 'P', '--trust', pki.files.root], { input: readFileSync(p12).toString('base64'), env: { P: PASS } });
    expect(first.code).toBe(0);
    writeFileSync(join(profiles, 'bank', 'notes.txt'), 'kept\n', { mode: 0o600 });
    const before = snapshot(profiles);

    const weakFail = await runCli(['certs', 'import', '--name', 'bank', '--profiles', profiles, '--force'], { input: weakPayload });
    expect(weakFail.code).toBe(2);
    expect(weakFail.stderr).toContain('SVCNODE_WEAK_KEY');
    expect(snapshot(profiles)).toEqual(before);

    const trustFail = await runCli(['certs', 'import', '--name', 'bank', '--profiles', profiles, '--force', '--trust', join(pki.dir, 'missing.pem')], { input: goodPayload });
    expect(trustFail.code).toBe(2);
    expect(trustFail.stderr).toContain('SVCNODE_FILE_NOT_FOUND');
    expect(snapshot(profiles)).toEqual(before);

    // A successful --force replaces the three files and keeps the folder's other content and modes.
    const replaced = await runCli(['certs', 'import', '--name', 'bank', '--profiles', profiles, '--force', '--json'], { input: goodPayload });
    expect(replaced.code).toBe(0);
    const after = snapshot(profiles);
    expect(Object.keys(after).sort()).toEqual(Object.keys(before).sort());
    expect(after['bank/notes.txt']).toBe(before['bank/notes.txt']);
    expect(after['bank/client.key']).not.toBe(before['bank/client.key']);
    expect(after['bank/client.key']?.startsWith('600 ')).toBe(true);
    expect(after['bank.json']?.startsWith('600 ')).toBe(true);
    assertNoSecrets(first.stdout + first.stderr + replaced.stdout + replaced.stderr, [PASS, pki.client.keyPem]);
  });

  it('an expired certificate, --force over a working profile: exit 2, nothing written; a renewal not valid yet is written (exit 0) with a note', async () => {
    const profiles = join(pki.dir, 'dates');
    expect((await runCli(['certs', 'import', '--name', 'bank', '--profiles', profiles], { input: goodPayload })).code).toBe(0);
    const before = snapshot(profiles);
    const day = 86_400_000;
    const old = await mintLeaf({ subject: 'CN=svcnode-bot-old,O=svcnode tests', issuer: pki.intermediate, usage: 'client', notBefore: new Date(Date.now() - 400 * day), notAfter: new Date(Date.now() - 30 * day) });
    const expired = await runCli(['certs', 'import', '--name', 'bank', '--profiles', profiles, '--force'], { input: old.certPem + pki.intermediate.certPem + old.keyPem });
    // Before: the expired certificate replaced the working one, then the command exited 2 ("status EXPIRED").
    expect(expired.code).toBe(2);
    expect(expired.stderr).toMatch(/SVCNODE_INVALID_BUNDLE.*the client certificate "CN=svcnode-bot-old, O=svcnode tests" expired on .*; nothing was written/);
    expect(snapshot(profiles)).toEqual(before);

    const staged = await mintLeaf({ subject: 'CN=svcnode-bot-next,O=svcnode tests', issuer: pki.intermediate, usage: 'client', notBefore: new Date(Date.now() + 2 * day), notAfter: new Date(Date.now() + 400 * day) });
    const renewal = await runCli(['certs', 'import', '--name', 'bank', '--profiles', profiles, '--force'], { input: staged.certPem + pki.intermediate.certPem + staged.keyPem });
    expect(renewal.code, renewal.stderr).toBe(0);
    expect(renewal.stdout).toContain('status   NOT_YET_VALID');
    expect(renewal.stdout).toContain('running workers keep the certificate they use until this one becomes valid');
    expect(readFileSync(join(profiles, 'bank', 'client-chain.pem'), 'utf8')).toContain(staged.certPem.trim());
    assertNoSecrets(expired.stdout + expired.stderr + renewal.stdout + renewal.stderr, [old.keyPem, staged.keyPem]);
  });
});
