/**
 * Paths that are not regular files, as a careless set-up produces them: a named pipe (FIFO) left
 * where a node definition, a profile, a certificate or a CRL should be, a device, a directory.
 * Reading a FIFO blocks until something writes to it (the CLI or worker start hung for good; an
 * asynchronous read held one of libuv's four threads forever), so every such path is refused
 * with a clear error before it is opened. So are kernel pseudo-files (/proc, /sys), which stat
 * as regular files of size 0 whatever they hold: /proc/self/pagemap read on for gigabytes, and
 * /proc/kmsg blocked. Real CLI subprocesses, killed if they hang.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, constants, existsSync, mkdirSync, openSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliResult } from '../helpers/cli.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';

/** A hang is a failure here, not a stuck run. */
const HANG_MS = 15_000;
let pki: TestPki;
const fifos: string[] = [];

function fifo(path: string): string {
  execFileSync('mkfifo', [path]);
  fifos.push(path);
  return path;
}

beforeAll(async () => {
  pki = await createTestPki();
  pki.profile('bank');
});
afterAll(async () => {
  // Release any reader still blocked on a FIFO (only when a check regressed): open it for writing without blocking.
  for (const path of fifos) {
    try {
      closeSync(openSync(path, constants.O_WRONLY | constants.O_NONBLOCK));
    } catch {
      // No reader waiting: nothing to release.
    }
  }
  await pki?.cleanup();
});

function expectRefused(r: CliResult, text: string): void {
  expect(r.timedOut, 'the command hung').toBe(false);
  expect(r.code, r.stderr + r.stdout).toBe(2);
  expect(r.stdout + r.stderr).toContain(text);
}

describe('dry-run', () => {
  it('a node definition that is a FIFO: exit 2 naming the file, not a hang', async () => {
    const node = fifo(join(pki.dir, 'node-fifo.json'));
    expectRefused(await runCli(['dry-run', node, '--profiles', pki.profilesDir], { timeoutMs: HANG_MS }), `${node}: is a named pipe (FIFO), not a regular file`);
  });

  it('a node definition that is a device or a directory', async () => {
    expectRefused(await runCli(['dry-run', '/dev/zero', '--profiles', pki.profilesDir], { timeoutMs: HANG_MS }), '/dev/zero: is a device, not a regular file');
    const dir = join(pki.dir, 'dir.json');
    mkdirSync(dir);
    expectRefused(await runCli(['dry-run', dir, '--profiles', pki.profilesDir], { timeoutMs: HANG_MS }), `${dir}: is a directory, not a regular file`);
  });

  it('a JSON document larger than 8 MiB is refused before it is read', async () => {
    const big = join(pki.dir, 'big.json');
    writeFileSync(big, `{"id": "big", "padding": "${'x'.repeat(9 * 1024 * 1024)}"}`);
    const r = await runCli(['dry-run', big, '--profiles', pki.profilesDir], { timeoutMs: HANG_MS });
    expectRefused(r, `${big}: is ${statSync(big).size} bytes, more than the 8388608 allowed`);
    expect(r.stderr).toContain('hint: node definitions, profiles and contexts read from files are at most 8 MiB');
  });

  it('a context file that is a FIFO', async () => {
    const node = join(pki.dir, 'node.json');
    execFileSync('sh', ['-c', `printf '%s' '{"id":"n","request":{"method":"GET","url":"https://localhost:1/"},"tls":{"profile":"bank"}}' > ${node}`]);
    const context = fifo(join(pki.dir, 'context-fifo.json'));
    expectRefused(await runCli(['dry-run', node, '--context', context, '--profiles', pki.profilesDir], { timeoutMs: HANG_MS }), 'is a named pipe (FIFO)');
  });
});

describe('files a call reads (the worker read them on its event loop: a FIFO froze it whole)', () => {
  const nodeFile = (name: string, extra: Record<string, unknown>): string => {
    const file = join(pki.dir, `${name}.json`);
    writeFileSync(file, JSON.stringify({ id: name, request: { method: 'GET', url: 'https://localhost:1/' }, tls: { profile: 'bank' }, retry: { limit: 0 }, ...extra }));
    return file;
  };

  it('an OAuth 2.0 client secret file that is a FIFO', async () => {
    const secret = fifo(join(pki.dir, 'secret-fifo'));
    const node = nodeFile('oauth-fifo', { auth: { type: 'oauth2-client-credentials', tokenUrl: 'https://localhost:1/token', clientId: 'bot', clientAuth: 'client_secret_basic', clientSecret: { file: secret } } });
    expectRefused(await runCli(['dry-run', node, '--profiles', pki.profilesDir], { timeoutMs: HANG_MS }), `client secret file ${secret} (auth.clientSecret) cannot be read or is empty: it is a named pipe (FIFO), not a regular file`);
  });

  it('a proxy.tls.ca file that is a FIFO', async () => {
    const ca = fifo(join(pki.dir, 'proxy-ca-fifo.pem'));
    const node = nodeFile('proxy-ca-fifo', { proxy: { url: 'https://localhost:1', tls: { ca: [ca] } } });
    expectRefused(await runCli(['dry-run', node, '--profiles', pki.profilesDir], { timeoutMs: HANG_MS }), `proxy.tls.ca: cannot read ${ca}: it is a named pipe (FIFO), not a regular file`);
  });
});

describe('certs verify', () => {
  it('a profile file that is a FIFO', async () => {
    const profile = fifo(join(pki.profilesDir, 'fifo.json'));
    expectRefused(await runCli(['certs', 'verify', profile], { timeoutMs: HANG_MS }), 'is a named pipe (FIFO), not a regular file');
  });

  it('a client certificate path that is a FIFO', async () => {
    const cert = fifo(join(pki.dir, 'client-fifo.pem'));
    const profile = pki.profile('cert-fifo', { client: { certificate: cert, key: pki.files.clientKey }, trust: { ca: [pki.files.root] } });
    expectRefused(await runCli(['certs', 'verify', profile], { timeoutMs: HANG_MS }), 'is a named pipe (FIFO), not a regular file');
  });

  it('a passphrase file that is a FIFO: a hint of its own, not the one for certificate files', async () => {
    const pass = fifo(join(pki.dir, 'pass-fifo'));
    const profile = pki.profile('pass-fifo', { client: { certificate: pki.files.clientChain, key: pki.files.clientKey, passphrase: { file: pass } }, trust: { ca: [pki.files.root] } });
    const r = await runCli(['certs', 'verify', profile, '--json'], { timeoutMs: HANG_MS });
    expectRefused(r, 'is a named pipe (FIFO), not a regular file');
    // Before: "point the profile at the certificate, key or PKCS#12 file itself".
    const [finding] = (JSON.parse(r.stdout) as { findings: { code: string; file: string; hint: string }[] }).findings;
    expect(finding).toMatchObject({ code: 'FILE_NOT_FOUND', file: pass });
    expect(finding?.hint).toContain('point passphrase.file at a regular file that holds only the passphrase');
    const inspect = await runCli(['certs', 'inspect', pki.files.clientKey, '--passphrase-file', pass], { timeoutMs: HANG_MS });
    expectRefused(inspect, 'hint: pass --passphrase-file a regular file that holds only the passphrase, or use --passphrase-env NAME');
  });

  it('a trust.crl path that is a FIFO', async () => {
    const crl = fifo(join(pki.dir, 'crl-fifo.pem'));
    const profile = pki.profile('crl-fifo', { client: { certificate: pki.files.clientChain, key: pki.files.clientKey }, trust: { ca: [pki.files.root], crl: [crl] } });
    expectRefused(await runCli(['certs', 'verify', profile], { timeoutMs: HANG_MS }), 'is a named pipe (FIFO), not a regular file');
  });
});

describe.runIf(process.platform === 'linux')('kernel pseudo-files (regular files of size 0 to stat)', () => {
  const node = (): string => {
    const file = join(pki.dir, 'pseudo-node.json');
    writeFileSync(file, JSON.stringify({ id: 'n', request: { method: 'GET', url: 'https://localhost:1/' }, tls: { profile: 'bank' }, retry: { limit: 0 } }));
    return file;
  };

  it('a /proc file as --context: exit 2 with an invalid_input Result naming it (before: memory grew without bound, or a hang)', async () => {
    const contexts = ['/proc/self/pagemap', ...(existsSync('/proc/kmsg') ? ['/proc/kmsg'] : [])];
    for (const context of contexts) {
      const r = await runCli(['dry-run', node(), '--context', context, '--profiles', pki.profilesDir, '--json'], { timeoutMs: HANG_MS });
      expectRefused(r, `${context}: is a file of procfs (/proc)`);
      expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, failure: { category: 'invalid_input', message: expect.stringContaining('not a regular file') as unknown } });
    }
  }, 2 * HANG_MS);

  it('a /sys file as the node definition', async () => {
    const file = '/sys/kernel/mm/transparent_hugepage/enabled';
    if (!existsSync(file)) return;
    expectRefused(await runCli(['dry-run', file, '--profiles', pki.profilesDir], { timeoutMs: HANG_MS }), `${file}: is a file of sysfs (/sys)`);
  });

  it('a /proc file as a CRL, a client certificate, a client secret or a proxy CA', async () => {
    const profile = pki.profile('crl-proc', { client: { certificate: pki.files.clientChain, key: pki.files.clientKey }, trust: { ca: [pki.files.root], crl: ['/proc/self/status'] } });
    expectRefused(await runCli(['certs', 'verify', profile], { timeoutMs: HANG_MS }), '/proc/self/status: the CRL file is a file of procfs (/proc)');
    // Before: "the file is empty" (a /proc file stats as 0 bytes), which sent the operator looking for the wrong thing.
    const certProc = pki.profile('cert-proc', { client: { certificate: '/proc/self/status', key: pki.files.clientKey }, trust: { ca: [pki.files.root] } });
    expectRefused(await runCli(['certs', 'verify', certProc], { timeoutMs: HANG_MS }), '/proc/self/status: is a file of procfs (/proc)');
    const oauth = join(pki.dir, 'oauth-proc.json');
    writeFileSync(oauth, JSON.stringify({ id: 'oauth-proc', request: { method: 'GET', url: 'https://localhost:1/' }, tls: { profile: 'bank' }, retry: { limit: 0 }, auth: { type: 'oauth2-client-credentials', tokenUrl: 'https://localhost:1/token', clientId: 'bot', clientAuth: 'client_secret_basic', clientSecret: { file: '/proc/self/environ' } } }));
    expectRefused(await runCli(['dry-run', oauth, '--profiles', pki.profilesDir], { timeoutMs: HANG_MS }), 'client secret file /proc/self/environ (auth.clientSecret) cannot be read or is empty: it is a file of procfs (/proc)');
    const proxy = join(pki.dir, 'proxy-proc.json');
    writeFileSync(proxy, JSON.stringify({ id: 'proxy-proc', request: { method: 'GET', url: 'https://localhost:1/' }, tls: { profile: 'bank' }, retry: { limit: 0 }, proxy: { url: 'https://localhost:1', tls: { ca: ['/proc/self/status'] } } }));
    expectRefused(await runCli(['dry-run', proxy, '--profiles', pki.profilesDir], { timeoutMs: HANG_MS }), 'proxy.tls.ca: cannot read /proc/self/status: it is a file of procfs (/proc)');
  }, 4 * HANG_MS);
});
