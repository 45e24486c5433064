import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintLeaf } from '../../src/pki/mint.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { createTestPki, multiIdentityPkcs12, opensslPkcs12, type TestPki } from '../helpers/pki.js';
import { assertNoSecrets } from '../helpers/secrets.js';

const PASS = 'cli-Passphrase-42';
const DAY = 86_400_000;

let pki: TestPki;
let secrets: string[];

/** Run `svcnode certs …` and check that nothing secret reached either stream. */
async function certs(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  const result = await runCli(['certs', ...args], { env: { SVCNODE_PROFILES: undefined, ...env }, cwd: pki.dir });
  assertNoSecrets(result.stdout, secrets, 'stdout');
  assertNoSecrets(result.stderr, secrets, 'stderr');
  return result;
}

/** stdout must be exactly one JSON document. */
function json<T = Record<string, unknown>>(r: CliResult): T {
  return JSON.parse(r.stdout) as T;
}

beforeAll(async () => {
  pki = await createTestPki();
  secrets = [PASS, pki.client.keyPem.split('\n')[1] ?? PASS, pki.server.keyPem.split('\n')[1] ?? PASS];
});
afterAll(() => pki.cleanup());

describe('svcnode certs --help', () => {
  it.each([[[]], [['inspect']], [['verify']], [['status']], [['init-ca']], [['issue']]])('prints usage for certs %j and exits 0', async (sub) => {
    const r = await certs([...sub, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: svcnode certs/);
  });

  it('exits 2 on a usage error', async () => {
    const r = await certs(['issue', '--ca', 'x', '--out', 'y']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--cn');
  });
});

describe('svcnode certs inspect', () => {
  it('lists every certificate in PEM, DER and legacy PKCS#12 files (passphrase from env)', async () => {
    const der = join(pki.dir, 'root.cer');
    writeFileSync(der, pki.root.cert.raw);
    const p12 = opensslPkcs12({ certFiles: [pki.files.clientCert, pki.files.intermediate], keyFile: pki.files.clientKey, out: join(pki.dir, 'inspect.p12'), passphrase: PASS, legacy: true });
    const r = await certs(['inspect', pki.files.clientChain, der, p12, '--passphrase-env', 'P12_PASS', '--json'], { P12_PASS: PASS });
    expect(r.code).toBe(0);
    const doc = json<{ files: { form: string; certificates: { subject: string; spkiPin: string }[]; keys: { matchesCertificate: number | null }[] }[]; errors: unknown[] }>(r);
    expect(doc.files.map((f) => f.form)).toEqual(['pem', 'der-certificate', 'pkcs12']);
    expect(doc.files.map((f) => f.certificates.length)).toEqual([2, 1, 2]);
    expect(doc.files[0]?.certificates[0]?.subject).toBe('CN=svcnode-bot, O=svcnode tests');
    expect(doc.files[2]?.keys).toEqual([expect.objectContaining({ keyType: 'rsa', keyBits: 2048, matchesCertificate: expect.any(Number) as unknown })]);
    expect(doc.errors).toEqual([]);
  });

  it('prints a human table and reads the passphrase from a file', async () => {
    const key = pki.write('inspect-enc.key', pki.client.key.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: PASS }) as string);
    const passFile = pki.write('inspect-pass.txt', `${PASS}\n`);
    const r = await certs(['inspect', pki.files.clientCert, key, '--passphrase-file', passFile]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('certificate 1: CN=svcnode-bot');
    expect(r.stdout).toContain('EKU       clientAuth');
    expect(r.stdout).toMatch(/private key: rsa 2048/);
    expect(r.stdout).toContain('SPKI pin  sha256//');
  });

  it('says what svcnode will make of a key: a 1024-bit RSA key is refused as a client key; a usual key gets no remark', async () => {
    const weak = await mintLeaf({ subject: 'CN=weak-bot', issuer: pki.intermediate, usage: 'client', key: { type: 'rsa', bits: 1024 } });
    const r = await certs(['inspect', pki.write('weak.pem', weak.certPem, weak.keyPem), pki.files.clientCert]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('key       rsa 1024 (below 2048 bits: refused as a client key)');
    expect(r.stdout).toContain('private key: rsa 1024 (below 2048 bits: refused as a client key), matches certificate 1');
    expect(r.stdout).toMatch(/key {7}rsa 2048\n/);
  });

  it('a PKCS#12 with two identities: every certificate and key listed, to find the one to export (a profile still refuses it)', async () => {
    const second = await mintLeaf({ subject: 'CN=second-bot', issuer: pki.intermediate, usage: 'client', key: { type: 'rsa', bits: 3072 } });
    // Aliases as keytool lists them (friendlyName); the second holds an ESC, which a terminal must not get raw.
    const file = multiIdentityPkcs12(join(pki.dir, 'two.p12'), [pki.client, second], PASS, { aliases: ['bot-prod', 'bot-2\u001b[31m'] });
    // Before: exit 2, "holds 2 private keys", and nothing listed.
    const r = await certs(['inspect', file, '--passphrase-env', 'P12_PASS'], { P12_PASS: PASS });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('certificate 1: CN=svcnode-bot, O=svcnode tests\n    alias     bot-prod\n');
    expect(r.stdout).toContain('certificate 2: CN=second-bot\n    alias     bot-2\\u001b[31m\n');
    expect(r.stdout).toContain('private key: rsa 2048, matches certificate 1\n    alias     bot-prod\n');
    expect(r.stdout).toContain('private key: rsa 3072, matches certificate 2\n    alias     bot-2\\u001b[31m\n');
    expect(r.stdout).not.toContain('\u001b');
    // The aliases are what keytool -importkeystore -srcalias takes: --json gives them as they are.
    const j = json<{ files: { certificates: { subject: string; alias?: string }[]; keys: { alias?: string }[] }[] }>(await certs(['inspect', file, '--passphrase-env', 'P12_PASS', '--json'], { P12_PASS: PASS }));
    expect(j.files[0]?.certificates.map((c) => c.alias)).toEqual(['bot-prod', 'bot-2\u001b[31m']);
    expect(j.files[0]?.keys.map((k) => k.alias)).toEqual(['bot-prod', 'bot-2\u001b[31m']);
    const profile = pki.profile('two-identities', { client: { pkcs12: file, passphrase: { env: 'P12_PASS' } }, trust: { ca: [pki.files.root] } });
    const v = await certs(['verify', profile, '--json'], { P12_PASS: PASS });
    expect(v.code).toBe(2);
    expect(json<{ findings: { code: string; message: string }[] }>(v).findings).toEqual([expect.objectContaining({ code: 'INVALID_BUNDLE', message: expect.stringContaining('holds 2 private keys (client identities: CN=svcnode-bot, O=svcnode tests; CN=second-bot)') as unknown })]);
  });

  it('a missing file: a hint about the path, not about profiles (inspect reads no profile)', async () => {
    const r = await certs(['inspect', 'no-such-file.pem']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`error [SVCNODE_FILE_NOT_FOUND]: ${join(pki.dir, 'no-such-file.pem')}: cannot read file`);
    // Before: "check the path and its permissions; paths in a profile resolve against the profile file".
    expect(r.stderr).toContain('hint: check the path and its permissions (a relative path resolves against the current directory)');
    expect(r.stderr).not.toContain('profile');
  });

  it('exits 2 naming the file and code for a wrong passphrase or corrupt file, still listing the good files', async () => {
    const key = pki.write('inspect-enc2.key', pki.client.key.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: PASS }) as string);
    const corrupt = pki.write('corrupt.pem', pki.root.certPem.slice(0, 200));
    const r = await certs(['inspect', pki.files.root, key, corrupt, '--passphrase-env', 'WRONG'], { WRONG: 'not-it' });
    expect(r.code).toBe(2);
    expect(r.stdout).toContain('CN=svcnode Test Root');
    expect(r.stderr).toContain('SVCNODE_BAD_PASSPHRASE');
    expect(r.stderr).toContain(key);
    expect(r.stderr).toContain('SVCNODE_INVALID_BUNDLE');
    const j = await certs(['inspect', key, '--json']);
    expect(j.code).toBe(2);
    expect(json<{ errors: { code: string; file: string }[] }>(j).errors).toEqual([expect.objectContaining({ code: 'SVCNODE_MISSING_PASSPHRASE', file: key })]);
  });
});

describe('svcnode certs verify', () => {
  it('exits 0 for a good profile', async () => {
    const r = await certs(['verify', pki.profile('good')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ok /);
  });

  it('prints one line per finding and exits 2 on an error finding', async () => {
    const r = await certs(['verify', pki.profile('mismatch', { client: { certificate: pki.files.clientChain, key: pki.files.serverKey } })]);
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/^error KEY_MISMATCH \S+: .+ \(.+\)$/m);
  });

  it('warns about expiry soon (exit 0) and errors on an expired client certificate (exit 2), as JSON', async () => {
    const soon = await mintLeaf({ subject: 'CN=soon', issuer: pki.intermediate, usage: 'client', notAfter: new Date(Date.now() + 20 * DAY) });
    const s = await certs(['verify', pki.profile('soon', { client: { certificate: pki.write('soon.pem', soon.certPem, pki.intermediate.certPem), key: pki.write('soon.key', soon.keyPem) }, trust: { ca: [pki.files.root] } }), '--json']);
    expect(s.code).toBe(0);
    expect(json(s)).toMatchObject({ profile: 'soon', ok: true, findings: [{ severity: 'warning', code: 'CERT_EXPIRES_SOON', daysLeft: 19 }] });

    const expired = await mintLeaf({ subject: 'CN=expired', issuer: pki.intermediate, usage: 'client', notBefore: new Date(Date.now() - 10 * DAY), notAfter: new Date(Date.now() - DAY) });
    const e = await certs(['verify', pki.profile('expired', { client: { certificate: pki.write('expired.pem', expired.certPem, pki.intermediate.certPem), key: pki.write('expired.key', expired.keyPem) }, trust: { ca: [pki.files.root] } })]);
    expect(e.code).toBe(2);
    expect(e.stdout).toMatch(/^error CLIENT_CERT_EXPIRED /m);
  });

  it('reports a wrong passphrase without revealing it', async () => {
    const key = pki.write('verify-enc.key', pki.client.key.export({ type: 'pkcs1', format: 'pem', cipher: 'aes-256-cbc', passphrase: PASS }) as string);
    const file = pki.profile('badpass', { client: { certificate: pki.files.clientChain, key, passphrase: { env: 'KEY_PASS' } } });
    const r = await certs(['verify', file, '--json'], { KEY_PASS: `${PASS}x` });
    expect(r.code).toBe(2);
    expect(json(r)).toMatchObject({ ok: false, findings: [{ severity: 'error', code: 'BAD_PASSPHRASE' }] });
    assertNoSecrets(r.stdout, [`${PASS}x`]);
  });
});

describe('svcnode certs status', () => {
  let dir: string;
  beforeAll(async () => {
    dir = join(pki.dir, 'status-profiles');
    const soon = await mintLeaf({ subject: 'CN=soon-bot', issuer: pki.intermediate, usage: 'client', notAfter: new Date(Date.now() + 30 * DAY + 3_600_000) });
    pki.write(join(dir, 'bank.json'), JSON.stringify({ client: { certificate: pki.files.clientChain, key: pki.files.clientKey }, trust: { ca: [pki.files.root] } }));
    pki.write(join(dir, 'gateway.json'), JSON.stringify({ client: { certificate: pki.write('soon-bot.pem', soon.certPem), key: pki.write('soon-bot.key', soon.keyPem) }, trust: { ca: [pki.files.root] } }));
    pki.write(join(dir, 'broken.json'), JSON.stringify({ client: { certificate: pki.files.clientChain, key: pki.files.serverKey } }));
  });

  it('tables every certificate, flags SOON, reports the broken profile and exits 2', async () => {
    const r = await certs(['status', '--profiles', dir]);
    expect(r.code).toBe(2);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^PROFILE\s+ROLE\s+SUBJECT\s+EXPIRES\s+DAYS\s+FLAG$/);
    expect(lines.filter((l) => l.startsWith('bank')).map((l) => l.split(/\s{2,}/)[1])).toEqual(['client', 'chain', 'trust']);
    expect(lines.find((l) => l.startsWith('gateway') && l.includes('client'))).toMatch(/\s30\s+SOON$/);
    expect(r.stderr).toContain('SVCNODE_KEY_MISMATCH');
    expect(r.stderr).toContain('broken.json');
  });

  it('prints the expiry warning of a SOON certificate in a line, as certs verify prints it (the README promises each warning)', async () => {
    const r = await certs(['status', '--profiles', dir]);
    // Before: only the SOON flag in the table, while --json and certs verify had CERT_EXPIRES_SOON.
    const line = r.stdout.split('\n').find((l) => l.startsWith('gateway: '));
    expect(line, r.stdout).toMatch(/^gateway: warning CERT_EXPIRES_SOON .*CN=soon-bot.*\(30 days left\)/);
    const verify = await certs(['verify', join(dir, 'gateway.json')]);
    expect(verify.stdout.trim().split('\n')).toContain(line?.slice('gateway: '.length));
  });

  it('reads SVCNODE_PROFILES and prints one JSON document', async () => {
    const r = await certs(['status', '--json'], { SVCNODE_PROFILES: dir });
    expect(r.code).toBe(2);
    const doc = json<{ profiles: { name: string; certificates: { role: string; flag: string; daysLeft: number }[] }[]; errors: { code: string }[] }>(r);
    expect(doc.profiles.map((p) => p.name)).toEqual(['bank', 'gateway']);
    expect(doc.profiles[1]?.certificates[0]).toMatchObject({ role: 'client', flag: 'SOON', daysLeft: 30 });
    expect(doc.errors).toEqual([expect.objectContaining({ code: 'KEY_MISMATCH', profileFile: join(dir, 'broken.json'), file: pki.files.serverKey })]);
  });

  it('a certificate with damaged dates (a bad copy): named with its file by inspect, verify and status (exit 2); status still lists the other profiles', async () => {
    // Two digits of the intermediate's notBefore overwritten: OpenSSL parses it, and reading the date fails.
    const der = Buffer.from(pki.intermediate.cert.raw);
    const at = der.indexOf(Buffer.from([0x17, 0x0d]));
    der.write('AB', at + 2, 'latin1');
    const damaged = pki.write('damaged-int.pem', `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n`);
    const dir2 = join(pki.dir, 'status-damaged');
    pki.write(join(dir2, 'bank.json'), JSON.stringify({ client: { certificate: pki.files.clientChain, key: pki.files.clientKey }, trust: { ca: [pki.files.root] } }));
    const bad = pki.write(join(dir2, 'bad.json'), JSON.stringify({ trust: { ca: [damaged] } }));
    // Before: inspect and status "error: Invalid time value", exit 1, nothing listed; verify "no problems found".
    const inspect = await certs(['inspect', damaged]);
    const verify = await certs(['verify', bad]);
    const status = await certs(['status', '--profiles', dir2, '--json']);
    for (const r of [inspect, verify, status]) {
      expect(r.code, r.stdout + r.stderr).toBe(2);
      expect(r.stdout + r.stderr).toContain('certificate #1 (CN=svcnode Test Intermediate, O=svcnode tests) is damaged: its validity dates cannot be read');
      expect(r.stdout + r.stderr).not.toContain('SVCNODE_INTERNAL_ERROR');
    }
    expect(json<{ profiles: { name: string }[] }>(status).profiles.map((p) => p.name)).toEqual(['bank']);
  });

  it('exits 0 when every profile loads, and 2 without a directory', async () => {
    const ok = join(pki.dir, 'status-ok');
    pki.write(join(ok, 'bank.json'), JSON.stringify({ trust: { ca: [pki.files.root] } }));
    expect((await certs(['status', '--profiles', ok])).code).toBe(0);
    const none = await certs(['status']);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('SVCNODE_PROFILES');
  });
});

describe('svcnode certs init-ca / issue', () => {
  it('mints a CA, client and server certificates that work in a real mutual-TLS handshake', async () => {
    const ca = join(pki.dir, 'private-ca');
    const out = join(pki.dir, 'issued');
    const init = await certs(['init-ca', '--out', ca, '--cn', 'Test Setup CA', '--key', 'ec256', '--days', '30', '--json']);
    expect(init.code).toBe(0);
    expect(json(init)).toMatchObject({ subject: 'CN=Test Setup CA', certificate: join(ca, 'ca.pem'), key: join(ca, 'ca.key') });
    expect(statSync(join(ca, 'ca.key')).mode & 0o777).toBe(0o600);

    const client = await certs(['issue', '--ca', ca, '--cn', 'Bot One', '--out', out, '--client']);
    expect(client.code).toBe(0);
    const server = await certs(['issue', '--ca', ca, '--cn', 'localhost', '--out', out, '--server', '--dns', 'localhost', '--ip', '127.0.0.1', '--key', 'ec256']);
    expect(server.code).toBe(0);
    expect(statSync(join(out, 'bot-one.key')).mode & 0o777).toBe(0o600);
    for (const r of [init, client, server]) assertNoSecrets(r.stdout + r.stderr, [readFileSync(join(out, 'bot-one.key'), 'utf8').split('\n')[1] ?? 'x']);

    const read = (f: string): string => readFileSync(f, 'utf8');
    const tls = https.createServer({ key: read(join(out, 'localhost.key')), cert: read(join(out, 'localhost.pem')), ca: read(join(ca, 'ca.pem')), requestCert: true, rejectUnauthorized: true }, (req, res) => {
      res.end(String((req.socket as TLSSocket).getPeerCertificate().subject.CN));
    });
    await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
    try {
      const { port } = tls.address() as AddressInfo;
      const body = await new Promise<string>((resolve, reject) => {
        https.get({ host: 'localhost', port, agent: false, ca: read(join(ca, 'ca.pem')), key: read(join(out, 'bot-one.key')), cert: read(join(out, 'bot-one.pem')) }, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve(text));
        }).on('error', reject);
      });
      expect(body).toBe('Bot One');
    } finally {
      tls.closeAllConnections();
      tls.close();
    }

    const verified = await certs(['verify', pki.profile('issued', { client: { certificate: join(out, 'bot-one.pem'), key: join(out, 'bot-one.key') }, trust: { ca: [join(ca, 'ca.pem')] } })]);
    expect(verified.code).toBe(0);
  });

  it('refuses to overwrite files, bad IPs and CA directories without a CA (exit 2)', async () => {
    const ca = join(pki.dir, 'ca-twice');
    expect((await certs(['init-ca', '--out', ca])).code).toBe(0);
    const again = await certs(['init-ca', '--out', ca]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('--force');
    expect((await certs(['init-ca', '--out', ca, '--force'])).code).toBe(0);
    const badIp = await certs(['issue', '--ca', ca, '--cn', 'x', '--out', join(pki.dir, 'x'), '--ip', 'not-an-ip']);
    expect(badIp.code).toBe(2);
    const noCa = await certs(['issue', '--ca', join(pki.dir, 'nothing-here'), '--cn', 'x', '--out', join(pki.dir, 'x')]);
    expect(noCa.code).toBe(2);
    expect(noCa.stderr).toContain('SVCNODE_FILE_NOT_FOUND');
    expect(noCa.stderr).toContain('certs init-ca');
    expect(noCa.stderr).not.toContain('profile');
  });

  it('with --json, every refusal after parsing is one {"error"} document on stdout (exit 2)', async () => {
    const ca = join(pki.dir, 'ca-json');
    const out = join(pki.dir, 'json-out');
    expect((await certs(['init-ca', '--out', ca, '--json'])).code).toBe(0);
    expect((await certs(['issue', '--ca', ca, '--cn', 'taken', '--out', out])).code).toBe(0);
    const cases: Array<[string[], string, string]> = [
      [['init-ca', '--out', ca], 'SVCNODE_USAGE', '--force'],
      [['issue', '--ca', ca, '--cn', 'taken', '--out', out], 'SVCNODE_USAGE', '--force'],
      [['issue', '--ca', ca, '--cn', 'x', '--out', out, '--ip', '999.1.1.1'], 'SVCNODE_USAGE', '127.0.0.1'],
      [['issue', '--ca', ca, '--cn', 'x', '--out', out, '--server', '--dns', 'bad name!'], 'SVCNODE_USAGE', 'api.example.com'],
      [['issue', '--ca', join(pki.dir, 'nosuch'), '--cn', 'x', '--out', out], 'SVCNODE_FILE_NOT_FOUND', 'init-ca'],
    ];
    for (const [args, code, hint] of cases) {
      const r = await certs([...args, '--json']);
      expect(r.code, args.join(' ')).toBe(2);
      const doc = json<{ error: { code: string; hint: string } }>(r);
      expect(doc.error.code, args.join(' ')).toBe(code);
      expect(doc.error.hint, args.join(' ')).toContain(hint);
    }
  });

  it('refuses an empty --cn, and an encrypted ca.key with what to do instead (exit 2)', async () => {
    for (const args of [['init-ca', '--out', join(pki.dir, 'ca-nocn'), '--cn', ''], ['issue', '--ca', join(pki.dir, 'ca-json'), '--cn', '  ', '--out', join(pki.dir, 'x')]]) {
      const r = await certs(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toContain('--cn');
      expect(r.stderr, args.join(' ')).toContain('must not be empty');
    }
    const ca = join(pki.dir, 'ca-encrypted');
    expect((await certs(['init-ca', '--out', ca])).code).toBe(0);
    const key = readFileSync(join(ca, 'ca.key'), 'utf8');
    writeFileSync(join(ca, 'ca.key'), createPrivateKey(key).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: PASS }));
    const r = await certs(['issue', '--ca', ca, '--cn', 'x', '--out', join(pki.dir, 'enc-out'), '--json']);
    expect(r.code).toBe(2);
    const doc = json<{ error: { message: string; hint: string } }>(r);
    expect(doc.error.message).toContain('is encrypted; certs issue reads the unencrypted ca.key');
    expect(doc.error.hint).toContain('openssl pkey');
    expect(doc.error.hint).not.toContain('profile');
  });

  it('checks --dns names (wildcards allowed, an address sent to --ip) and warns when a certificate outlives its CA', async () => {
    const ca = join(pki.dir, 'ca-short');
    const out = join(pki.dir, 'dns-out');
    expect((await certs(['init-ca', '--out', ca, '--days', '10'])).code).toBe(0);
    for (const bad of ['bad name!', 'a..b', '-lead.example.com', 'x.*.example.com', `${'a'.repeat(64)}.com`]) {
      const r = await certs(['issue', '--ca', ca, '--cn', 'x', '--out', out, '--server', '--dns', bad]);
      expect(r.code, bad).toBe(2);
      expect(r.stderr, bad).toContain(`--dns ${JSON.stringify(bad)} is not a DNS name`);
      expect(existsSync(join(out, 'x.key')), bad).toBe(false);
    }
    const ip = await certs(['issue', '--ca', ca, '--cn', 'x', '--out', out, '--server', '--dns', '10.0.0.1']);
    expect(ip.code).toBe(2);
    expect(ip.stderr).toContain('pass it with --ip');

    const ok = await certs(['issue', '--ca', ca, '--cn', 'wild', '--out', out, '--server', '--dns', '*.api.example.com', '--dns', 'api-1.example.com.', '--days', '5', '--json']);
    expect(ok.code).toBe(0);
    expect(json(ok)).not.toHaveProperty('warnings');
    expect(new X509Certificate(readFileSync(join(out, 'wild.pem'))).subjectAltName).toBe('DNS:*.api.example.com, DNS:api-1.example.com.');

    const long = await certs(['issue', '--ca', ca, '--cn', 'long', '--out', out, '--days', '400', '--json']);
    expect(long.code).toBe(0);
    const doc = json<{ warnings?: string[] }>(long);
    expect(doc.warnings).toEqual([expect.stringMatching(/^the certificate outlives its CA \(valid until .*\): .*--days (9|10) or less/)]);
    expect(long.stderr).toContain('warning: the certificate outlives its CA');
  });
});
