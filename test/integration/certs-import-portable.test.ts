import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintCa } from '../../src/pki/mint.js';
import { runCli } from '../helpers/cli.js';
import { createTestPki, opensslPkcs12, type TestPki } from '../helpers/pki.js';
import { assertNoSecrets } from '../helpers/secrets.js';
import { startMtlsServer, type MtlsServer } from '../helpers/servers.js';

/**
 * A profile written by `certs import` keeps working when the files it was made from move, and
 * when the profiles directory is copied to another host: `--trust` certificates are copied into
 * it, a passphrase file under it is named relative to it.
 */

const PASS = 'p0rtable import-pass';

describe('certs import writes a self-contained profile', () => {
  let pki: TestPki;
  let server: MtlsServer;
  let payload: string;

  beforeAll(async () => {
    pki = await createTestPki();
    const p12 = opensslPkcs12({ certFiles: [pki.files.clientCert, pki.files.intermediate], keyFile: pki.files.clientKey, out: join(pki.dir, 'device.p12'), passphrase: PASS });
    payload = readFileSync(p12).toString('base64');
    server = await startMtlsServer({ key: pki.server.keyPem, cert: pki.server.certPem + pki.intermediate.certPem, ca: pki.root.certPem });
  });
  afterAll(async () => {
    await server?.close();
    await pki?.cleanup();
  });

  it('copies --trust into NAME/trust.pem and names a passphrase file under the profiles directory relatively: the CA download and the directory can move', async () => {
    const work = join(pki.dir, 'workstation');
    mkdirSync(join(work, 'Downloads'), { recursive: true });
    mkdirSync(join(work, 'profiles', 'secrets'), { recursive: true });
    writeFileSync(join(work, 'Downloads', 'bank-root.pem'), pki.root.certPem);
    // A second file with an intermediate and the root again: copied once each.
    writeFileSync(join(work, 'Downloads', 'bank-chain.pem'), pki.intermediate.certPem + pki.root.certPem);
    writeFileSync(join(work, 'profiles', 'secrets', 'bot7.pass'), `${PASS}\n`, { mode: 0o600 });

    const r = await runCli(['certs', 'import', '--name', 'bot7', '--profiles', 'profiles', '--passphrase-file', 'profiles/secrets/bot7.pass', '--trust', 'Downloads/bank-root.pem', 'Downloads/bank-chain.pem'], { input: payload, cwd: work });
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(readFileSync(join(work, 'profiles', 'bot7.json'), 'utf8')) as { trust: { ca: string[] }; client: { passphrase: { file: string } } };
    // Before: {"trust": {"ca": ["/…/Downloads/bank-root.pem", …]}, "passphrase": {"file": "/…/profiles/secrets/bot7.pass"}}.
    expect(doc.trust.ca).toEqual(['bot7/trust.pem']);
    expect(doc.client.passphrase).toEqual({ file: 'secrets/bot7.pass' });
    const trustPem = readFileSync(join(work, 'profiles', 'bot7', 'trust.pem'), 'utf8');
    expect(trustPem).toBe(pki.root.certPem + pki.intermediate.certPem);
    expect(r.stdout).toMatch(/trust\s+\S+bot7\/trust\.pem: 2 certificates copied from/);
    expect(r.stdout).toContain('read from secrets/bot7.pass, relative to the profile');
    assertNoSecrets(r.stdout + r.stderr, [PASS]);

    // The operator tidies the Downloads folder, then copies profiles/ to a worker host.
    rmSync(join(work, 'Downloads'), { recursive: true });
    const host = join(pki.dir, 'worker-host');
    mkdirSync(host);
    renameSync(join(work, 'profiles'), join(host, 'profiles'));
    const verify = await runCli(['certs', 'verify', join(host, 'profiles', 'bot7.json'), '--json']);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    expect(verify.stdout).not.toContain('FILE_NOT_FOUND');

    // And the copied trust verifies a real server.
    const nodeFile = join(host, 'get-account.json');
    writeFileSync(nodeFile, JSON.stringify({ id: 'get-account', request: { method: 'GET', url: `https://localhost:${server.port}/accounts/42` }, tls: { profile: 'bot7' } }));
    const dry = await runCli(['dry-run', nodeFile, '--profiles', join(host, 'profiles'), '--json']);
    expect(dry.code, dry.stdout).toBe(0);
    expect((JSON.parse(dry.stdout) as { ok: boolean }).ok).toBe(true);
  });

  it('names a passphrase file outside the profiles directory by its absolute path, and says so', async () => {
    const work = join(pki.dir, 'outside');
    mkdirSync(join(work, 'secrets'), { recursive: true });
    const passFile = join(work, 'secrets', 'bot8.pass');
    writeFileSync(passFile, PASS, { mode: 0o600 });
    const r = await runCli(['certs', 'import', '--name', 'bot8', '--profiles', 'profiles', '--passphrase-file', 'secrets/bot8.pass', '--json'], { input: payload, cwd: work });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { passphrase: { file: string } };
    expect(out.passphrase).toEqual({ file: passFile });
    const doc = JSON.parse(readFileSync(join(work, 'profiles', 'bot8.json'), 'utf8')) as { client: { passphrase: { file: string } } };
    expect(doc.client.passphrase).toEqual({ file: passFile });
    const text = await runCli(['certs', 'import', '--name', 'bot8', '--profiles', 'profiles', '--passphrase-file', 'secrets/bot8.pass', '--force'], { input: payload, cwd: work });
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(`read from ${passFile}, by its absolute path: it lies outside the profiles directory and is not copied`);
    assertNoSecrets(r.stdout + r.stderr + text.stdout + text.stderr, [PASS]);
  });

  it('--force replaces NAME/trust.pem; without --force an existing profile stays; a --force without --trust says the old trust.pem is no longer listed', async () => {
    const work = join(pki.dir, 'forced');
    mkdirSync(work);
    const other = await mintCa({ subject: 'CN=Other Bank Root,O=svcnode tests' });
    writeFileSync(join(work, 'root.pem'), pki.root.certPem);
    writeFileSync(join(work, 'other.pem'), other.certPem);
    const run = (...args: string[]) => runCli(['certs', 'import', '--name', 'bank', '--profiles', 'profiles', '--passphrase-env', 'P', ...args], { input: payload, cwd: work, env: { P: PASS } });
    expect((await run('--trust', 'root.pem')).code).toBe(0);
    const trustFile = join(work, 'profiles', 'bank', 'trust.pem');
    expect(readFileSync(trustFile, 'utf8')).toBe(pki.root.certPem);

    const refused = await run('--trust', 'other.pem');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('--force');
    expect(readFileSync(trustFile, 'utf8')).toBe(pki.root.certPem);

    expect((await run('--trust', 'other.pem', 'root.pem', '--force')).code).toBe(0);
    expect(readFileSync(trustFile, 'utf8')).toBe(other.certPem + pki.root.certPem);

    const dropped = await run('--force');
    expect(dropped.code).toBe(0);
    expect(dropped.stdout).toContain('trust.pem of the replaced profile is kept but no longer listed');
    expect((JSON.parse(readFileSync(join(work, 'profiles', 'bank.json'), 'utf8')) as { trust?: unknown }).trust).toBeUndefined();
  });
});
