/**
 * `svcnode dry-run NODE.json --tls-only` and `--keylog FILE` as real subprocesses (the built CLI)
 * against real TLS servers: a raw TLS server that records every application byte, Node and
 * `openssl s_server` backends that reject our certificate after a TLS 1.3 handshake, an
 * `openssl s_server -Verify 1 -CAfile` that names its CAs, a CONNECT proxy. Key log lines are
 * compared with the secrets the servers themselves derived. Needs `npm run build` first.
 */
import { chownSync, existsSync, linkSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeDefinition } from '../../src/definitions/types.js';
import type { HandshakeResult } from '../../src/invoke/handshake-check.js';
import { mintCa, mintLeaf } from '../../src/pki/mint.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { LOOPBACK, listen, trackSockets } from '../helpers/net.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startConnectProxy, startMtlsServer, startOpensslServer, unusedPort, type MtlsServer, type TestServer } from '../helpers/servers.js';

const TIMEOUTS = { connectMs: 10_000, handshakeMs: 10_000, responseMs: 10_000 };

/** A raw TLS server (client certificate required) that records every application byte it receives. */
interface RecordingServer extends TestServer {
  bytes: number;
  secureConnections: number;
  closed: number;
  authorized: boolean[];
}

async function startRecordingServer(pki: TestPki): Promise<RecordingServer> {
  const server = tls.createServer({ key: pki.server.keyPem, cert: pki.server.certPem + pki.intermediate.certPem, ca: pki.root.certPem, requestCert: true, rejectUnauthorized: true });
  const tracked = trackSockets(server);
  const state: RecordingServer = { host: LOOPBACK, port: 0, url: '', bytes: 0, secureConnections: 0, closed: 0, authorized: [], close: () => tracked.close() };
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    state.secureConnections++;
    state.authorized.push(socket.authorized);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => state.closed++);
    socket.on('data', (chunk: Buffer) => {
      state.bytes += chunk.length;
      socket.end('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok');
    });
  });
  server.on('tlsClientError', () => undefined);
  const port = await listen(server, 0);
  return Object.assign(state, { port, url: `https://localhost:${port}/` });
}

let pki: TestPki;
let nodesDir: string;
const servers: TestServer[] = [];

function writeNode(name: string, url: string, extra: Partial<NodeDefinition> = {}): string {
  const file = join(nodesDir, `${name}.json`);
  const doc: NodeDefinition = { id: name, request: { method: 'POST', url, body: { amount: 100 } }, tls: { profile: 'bank' }, timeouts: TIMEOUTS, retry: { limit: 0 }, ...extra };
  writeFileSync(file, `${JSON.stringify(doc, null, 2)}\n`);
  return file;
}

function dryRun(nodeFile: string, extraArgs: string[] = [], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  return runCli(['dry-run', nodeFile, '--profiles', pki.profilesDir, ...extraArgs], { env: { SVCNODE_PROFILES: undefined, ...env }, timeoutMs: 20_000 });
}

function oneResult(r: CliResult): HandshakeResult {
  expect(r.timedOut).toBe(false);
  return JSON.parse(r.stdout) as HandshakeResult;
}

async function until(check: () => boolean, ms = 3_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
}

beforeAll(async () => {
  pki = await createTestPki();
  nodesDir = join(pki.dir, 'nodes');
  mkdirSync(nodesDir);
  const rogueRoot = await mintCa({ subject: 'CN=Rogue Root' });
  const rogue = await mintLeaf({ subject: 'CN=svcnode-bot,O=rogue', issuer: rogueRoot, usage: 'client' });
  const trust = { ca: [pki.files.root] };
  pki.profile('bank');
  pki.profile('rogue', { client: { certificate: pki.write('rogue.pem', rogue.certPem), key: pki.write('rogue.key', rogue.keyPem) }, trust });
  pki.profile('none', { trust });
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await pki?.cleanup();
});

function track<T extends TestServer>(s: T): T {
  servers.push(s);
  return s;
}

describe('dry-run --tls-only', () => {
  it('completes the handshake, sends 0 application bytes, exits 0 and reports the chain; a normal dry-run does send bytes', async () => {
    const recorder = track(await startRecordingServer(pki));
    const node = writeNode('pay', recorder.url);
    const r = await dryRun(node, ['--tls-only', '--json']);
    const result = oneResult(r);
    expect(r.code, r.stderr).toBe(0);
    expect(result.ok).toBe(true);
    expect(result.response).toBeNull();
    expect(result.failure).toBeNull();
    expect(result.tls?.protocol).toBe('TLSv1.3');
    expect(result.tls?.serverChain.map((c) => c.subject)).toEqual(['CN=localhost, O=svcnode tests', 'CN=svcnode Test Intermediate, O=svcnode tests', 'CN=svcnode Test Root, O=svcnode tests']);
    expect(result.tls?.clientCertificate?.subject).toBe('CN=svcnode-bot, O=svcnode tests');
    expect(result.handshake).toMatchObject({ tlsOnly: true, clientCertificateRequested: true });
    expect(result.handshake.verdictWaitMs).toBeGreaterThanOrEqual(900);
    await until(() => recorder.closed === 1);
    expect(recorder.secureConnections).toBe(1);
    expect(recorder.authorized).toEqual([true]);
    expect(recorder.bytes).toBe(0);

    // The recorder does see a real request: the zero above is not an artefact of the server.
    const sent = await dryRun(node, ['--json']);
    expect(sent.code, sent.stderr).toBe(0);
    await until(() => recorder.closed === 2);
    expect(recorder.bytes).toBeGreaterThan(0);
  });

  it('a TLS 1.3 server that closes 300 ms after the handshake (our certificate rejected): client_cert_rejected, exit 3', async () => {
    // Verifies the client certificate after the handshake and hangs up late, as a backend with an OCSP or database check does.
    const server = tls.createServer({ key: pki.server.keyPem, cert: pki.server.certPem + pki.intermediate.certPem, ca: pki.root.certPem, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.3' });
    const tracked = trackSockets(server);
    track({ host: LOOPBACK, port: 0, url: '', close: () => tracked.close() });
    let bytes = 0;
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      socket.on('error', () => undefined);
      socket.on('data', (chunk: Buffer) => (bytes += chunk.length));
      if (!socket.authorized) setTimeout(() => socket.destroy(), 300);
    });
    const port = await listen(server, 0);
    const r = await dryRun(writeNode('late-reject', `https://localhost:${port}/`, { tls: { profile: 'rogue' } }), ['--tls-only', '--json']);
    const result = oneResult(r);
    expect(result.failure?.category, JSON.stringify(result.failure)).toBe('client_cert_rejected');
    expect(r.code).toBe(3);
    expect(result.tls?.protocol).toBe('TLSv1.3');
    expect(result.response).toBeNull();
    expect(result.handshake.verdictWaitMs).toBeGreaterThanOrEqual(250);
    expect(bytes).toBe(0);
  });

  it('openssl s_server (TLS 1.3, -Verify) alerting after the handshake: client_cert_rejected; no certificate at all: client_cert_required', async () => {
    const ossl = track(await startOpensslServer({ certFile: pki.files.serverCert, keyFile: pki.files.serverKey, chainFile: pki.files.intermediate, caFile: pki.files.root, verify: 'require', tls: '1.3' }));
    const url = `https://localhost:${ossl.port}/`;
    const [rogue, none] = await Promise.all([
      dryRun(writeNode('ossl-rogue', url, { tls: { profile: 'rogue' } }), ['--tls-only', '--json']),
      dryRun(writeNode('ossl-none', url, { tls: { profile: 'none' } }), ['--tls-only', '--json']),
    ]);
    expect(oneResult(rogue).failure?.category).toBe('client_cert_rejected');
    expect(rogue.code).toBe(3);
    expect(oneResult(none).failure?.category).toBe('client_cert_required');
    expect(none.code).toBe(3);
  });

  it('openssl s_server -Verify 1 -CAfile with a CA list: the named CAs are shown (JSON and text)', async () => {
    const other = await mintCa({ subject: 'CN=Partner Bank Root,O=Partner' });
    const caList = pki.write('ca-list.pem', pki.root.certPem, other.certPem);
    const ossl = track(await startOpensslServer({ certFile: pki.files.serverCert, keyFile: pki.files.serverKey, chainFile: pki.files.intermediate, caFile: caList, verify: 'require', verifyDepth: 1, tls: 'both' }));
    const node = writeNode('ossl-names', `https://localhost:${ossl.port}/`);
    const r = await dryRun(node, ['--tls-only', '--json']);
    const result = oneResult(r);
    expect(r.code, JSON.stringify(result.failure)).toBe(0);
    expect(result.tls?.protocol).toBe('TLSv1.3');
    expect(result.handshake.clientCertificateRequested).toBe(true);
    expect(result.handshake.acceptableCAs).toEqual(['CN=svcnode Test Root, O=svcnode tests', 'CN=Partner Bank Root, O=Partner']);
    // Our chain (leaf ← svcnode Test Intermediate ← svcnode Test Root) meets the list at the root.
    expect(result.handshake.clientIssuerListed).toBe(true);
    const text = await dryRun(node, ['--tls-only']);
    expect(text.stdout).not.toContain('WARNING');
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('CA names    CN=svcnode Test Root, O=svcnode tests');
    expect(text.stdout).toContain('CN=Partner Bank Root, O=Partner');
    expect(text.stdout).toContain('no HTTP request was sent');
  });

  it('a server whose CA list does not name our issuer, and that lets the handshake through: ok, with a warning that it will most likely refuse the certificate', async () => {
    const partner = await mintCa({ subject: 'CN=Partner Only Root,O=Partner' });
    // -verify (not -Verify): it asks, tolerates what it cannot verify, and judges later, as nginx does at the HTTP layer.
    const ossl = track(await startOpensslServer({ certFile: pki.files.serverCert, keyFile: pki.files.serverKey, chainFile: pki.files.intermediate, caFile: pki.write('partner-only.pem', partner.certPem), verify: 'request', tls: 'both' }));
    const node = writeNode('ossl-other-ca', `https://localhost:${ossl.port}/`);
    const result = oneResult(await dryRun(node, ['--tls-only', '--json']));
    expect(result.ok, JSON.stringify(result.failure)).toBe(true);
    expect(result.handshake.acceptableCAs).toEqual(['CN=Partner Only Root, O=Partner']);
    expect(result.handshake.clientIssuerListed).toBe(false);
    // Before: "result OK" beside a CA list that does not hold our issuer, and no word about it.
    const text = await dryRun(node, ['--tls-only']);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('WARNING: none of these CAs issued our client certificate or a CA certificate sent with it');
  });

  it('a server that trusts another CA and refuses the handshake: the warning names the unlisted issuer as the likely cause, not "the handshake passed"', async () => {
    const partner = await mintCa({ subject: 'CN=Partner Strict Root,O=Partner' });
    const ossl = track(await startOpensslServer({ certFile: pki.files.serverCert, keyFile: pki.files.serverKey, chainFile: pki.files.intermediate, caFile: pki.write('partner-strict.pem', partner.certPem), verify: 'require', tls: 'both' }));
    const node = writeNode('ossl-wrong-ca', `https://localhost:${ossl.port}/`);
    const result = oneResult(await dryRun(node, ['--tls-only', '--json']));
    expect(result.failure?.category, JSON.stringify(result.failure)).toBe('client_cert_rejected');
    expect(result.handshake.clientIssuerListed).toBe(false);
    const text = await dryRun(node, ['--tls-only']);
    expect(text.code).toBe(3);
    expect(text.stdout).toMatch(/^FAILED {6}client_cert_rejected /m);
    // Before: "... the server will most likely refuse it, even though the handshake passed", under FAILED.
    expect(text.stdout).not.toContain('handshake passed');
    expect(text.stdout).toContain('WARNING: none of these CAs issued our client certificate or a CA certificate sent with it: most likely why the server refused it');
  });

  it('a server that asks for no certificate: requested false, no client certificate reported, no verdict wait', async () => {
    const backend = track(await startMtlsServer({ key: pki.server.keyPem, cert: pki.server.certPem + pki.intermediate.certPem, requestCert: false, rejectUnauthorized: false }));
    const result = oneResult(await dryRun(writeNode('no-request', `https://localhost:${backend.port}/`), ['--tls-only', '--json']));
    expect(result.ok).toBe(true);
    expect(result.handshake.clientCertificateRequested).toBe(false);
    expect(result.handshake.verdictWaitMs).toBe(0);
    expect(result.tls?.clientCertificate).toBeNull();
  });

  it('goes through the node proxy; an untrusted server certificate is server_cert_untrusted with its chain; nothing listening is connect_failed (exit 5)', async () => {
    const [backend, leafOnly, proxy] = await Promise.all([
      startMtlsServer({ key: pki.server.keyPem, cert: pki.server.certPem + pki.intermediate.certPem, ca: pki.root.certPem }).then(track),
      startMtlsServer({ key: pki.server.keyPem, cert: pki.server.certPem, ca: pki.root.certPem }).then(track),
      startConnectProxy().then(track),
    ]);
    const [viaProxy, untrusted, refused] = await Promise.all([
      dryRun(writeNode('via-proxy', `https://localhost:${backend.port}/`, { proxy: { url: proxy.url } }), ['--tls-only', '--json']),
      dryRun(writeNode('untrusted', `https://localhost:${leafOnly.port}/`), ['--tls-only', '--json']),
      unusedPort().then((port) => dryRun(writeNode('refused', `https://localhost:${port}/`), ['--tls-only', '--json'])),
    ]);
    expect(viaProxy.code, viaProxy.stdout).toBe(0);
    expect(proxy.targets.every((t) => t === `localhost:${backend.port}`)).toBe(true);
    expect(proxy.tunnels).toBeGreaterThanOrEqual(1);
    expect(backend.requests).toBe(0);
    // A Node server names the CAs of its `ca` option.
    expect(oneResult(viaProxy).handshake.acceptableCAs).toEqual(['CN=svcnode Test Root, O=svcnode tests']);
    const u = oneResult(untrusted);
    expect(u.failure?.category).toBe('server_cert_untrusted');
    expect(u.tls?.serverChain[0]?.subject).toBe('CN=localhost, O=svcnode tests');
    expect(untrusted.code).toBe(3);
    expect(oneResult(refused).failure?.category).toBe('connect_failed');
    expect(refused.code).toBe(5);
  });

  it('a port that accepts TCP and never answers TLS: timeout in phase tls, as a call reports it', async () => {
    const silent = net.createServer((socket) => socket.on('error', () => undefined));
    const tracked = trackSockets(silent);
    const port = await listen(silent, 0);
    track({ host: LOOPBACK, port, url: '', close: () => tracked.close() });
    const file = writeNode('silent', `https://localhost:${port}/`, { timeouts: { ...TIMEOUTS, handshakeMs: 300 } });
    const [check, call] = await Promise.all([dryRun(file, ['--tls-only', '--json']), dryRun(file, ['--json'])]);
    for (const r of [check, call]) {
      expect(oneResult(r).failure).toMatchObject({ category: 'timeout', phase: 'tls' });
      expect(oneResult(r).failure?.message).toContain('TLS handshake did not finish within 300 ms');
      expect(r.code).toBe(5);
      // The time the phase took until it was given up (before: 0, as if nothing had been spent).
      expect(oneResult(r).timings.handshakeMs).toBeGreaterThanOrEqual(290);
      expect(oneResult(r).timings.handshakeMs).toBeLessThan(2_000);
    }
  });
});

describe('dry-run --keylog', () => {
  /** client_random → label → secret, from NSS key log lines. */
  function parse(lines: string[]): Map<string, Map<string, string>> {
    const out = new Map<string, Map<string, string>>();
    for (const line of lines) {
      const [label, random, secret] = line.split(' ') as [string, string, string];
      if (!out.has(random)) out.set(random, new Map());
      out.get(random)?.set(label, secret);
    }
    return out;
  }

  function keylogServer(backend: MtlsServer): string[] {
    const lines: string[] = [];
    backend.server.on('keylog', (line: Buffer) => lines.push(line.toString('latin1').trim()));
    return lines;
  }

  it('appends NSS lines (0600) whose secrets are the ones the servers derived, per connection, TLS 1.3 and 1.2', async () => {
    const [v13, v12] = await Promise.all([
      startMtlsServer({ key: pki.server.keyPem, cert: pki.server.certPem + pki.intermediate.certPem, ca: pki.root.certPem, minVersion: 'TLSv1.3' }).then(track),
      startMtlsServer({ key: pki.server.keyPem, cert: pki.server.certPem + pki.intermediate.certPem, ca: pki.root.certPem, maxVersion: 'TLSv1.2' }).then(track),
    ]);
    const serverLines = keylogServer(v13);
    const serverLines12 = keylogServer(v12);
    const file = join(pki.dir, 'keys.log');
    const n13 = writeNode('keylog-13', `https://localhost:${v13.port}/`);
    const first = await dryRun(n13, ['--keylog', file, '--json']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toMatch(/warning: --keylog .*keys\.log .*decrypt/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect((await dryRun(n13, ['--keylog', file, '--tls-only', '--json'])).code).toBe(0);
    expect((await dryRun(writeNode('keylog-12', `https://localhost:${v12.port}/`), ['--keylog', file, '--json'])).code).toBe(0);

    const lines = readFileSync(file, 'latin1').split('\n').filter(Boolean);
    for (const line of lines) expect(line).toMatch(/^[A-Z_0-9]+ [0-9a-f]{64} [0-9a-f]{64,96}$/);
    const client = parse(lines);
    const tls13 = [...client.values()].filter((c) => c.has('CLIENT_HANDSHAKE_TRAFFIC_SECRET'));
    const tls12 = [...client.values()].filter((c) => c.has('CLIENT_RANDOM'));
    // Each dry-run opens two connections: the call (or check) and the one that learns which certificates the server sends.
    // Before: only the first of the two was in the file.
    expect(tls13).toHaveLength(4);
    expect(tls12).toHaveLength(2);
    for (const c of tls13) {
      expect([...c.keys()].sort()).toEqual(['CLIENT_HANDSHAKE_TRAFFIC_SECRET', 'CLIENT_TRAFFIC_SECRET_0', 'EXPORTER_SECRET', 'SERVER_HANDSHAKE_TRAFFIC_SECRET', 'SERVER_TRAFFIC_SECRET_0']);
    }
    // Same client random, same secrets on the server side: the file decrypts these connections.
    const server = parse([...serverLines, ...serverLines12]);
    // The check's connection closes before the server has read all of our flight: under TLS 1.3 the
    // server has its handshake secrets (which decrypt the certificates) but no client traffic
    // secret; under TLS 1.2 (certificates in plaintext) it may have derived nothing yet. Every
    // secret the server did derive matches ours, and it knows at least the five connections that
    // got that far (three calls or checks, two TLS 1.3 checks of the chain).
    let known = 0;
    for (const [random, secrets] of client) {
      const derived = server.get(random);
      if (derived) known++;
      for (const [label, secret] of derived ?? []) expect(secrets.get(label), `${label} of ${random}`).toBe(secret);
    }
    expect(known).toBeGreaterThanOrEqual(5);
  });

  it('refuses an existing key log file that others can read (exit 2) and a worker --keylog or NODE_OPTIONS=--tls-keylog (exit 2)', async () => {
    const open = join(pki.dir, 'shared.log');
    writeFileSync(open, '', { mode: 0o644 });
    const backend = track(await startMtlsServer({ key: pki.server.keyPem, cert: pki.server.certPem + pki.intermediate.certPem, ca: pki.root.certPem }));
    const r = await dryRun(writeNode('keylog-shared', `https://localhost:${backend.port}/`), ['--keylog', open]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('SVCNODE_KEYLOG_FILE');
    expect(backend.tcpConnections).toBe(0);

    const file = join(pki.dir, 'worker-keys.log');
    const worker = await runCli(['worker', '--keylog', file, '--nodes', nodesDir, '--profiles', pki.profilesDir, '--redis', 'redis://127.0.0.1:1'], { timeoutMs: 10_000 });
    expect(worker.code).toBe(2);
    expect(worker.stderr).toMatch(/SVCNODE_USAGE.*--keylog/);
    expect(existsSync(file)).toBe(false);
    const viaNode = await runCli(['worker', '--nodes', nodesDir, '--profiles', pki.profilesDir, '--redis', 'redis://127.0.0.1:1'], { env: { NODE_OPTIONS: `--tls-keylog=${file}` }, timeoutMs: 10_000 });
    expect(viaNode.code).toBe(2);
    expect(viaNode.stderr).toContain('--tls-keylog');
  });

  it('refuses a key log name another user put there first: a file of theirs (even 0600), a symlink, a hard link (exit 2, nothing written)', async () => {
    const backend = track(await startMtlsServer({ key: pki.server.keyPem, cert: pki.server.certPem + pki.intermediate.certPem, ca: pki.root.certPem }));
    const node = writeNode('keylog-planted', `https://localhost:${backend.port}/`);
    const refused = async (keylog: string, why: RegExp): Promise<void> => {
      const r = await dryRun(node, ['--keylog', keylog]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain('SVCNODE_KEYLOG_FILE');
      expect(r.stderr).toMatch(why);
    };
    const ownFile = (name: string): string => {
      const path = join(pki.dir, name);
      writeFileSync(path, '', { mode: 0o600 });
      return path;
    };

    // Before: appended to (the probe's repro: a 0600 file of nobody's in a 1777 directory).
    if (process.getuid?.() === 0) {
      const theirs = ownFile('nobody.log');
      chownSync(theirs, 65534, 65534);
      await refused(theirs, /belongs to another user \(uid 65534/);
      expect(statSync(theirs).size).toBe(0);
    }
    // Before: followed, to a file of ours or to a name it then created.
    const target = ownFile('target.log');
    const link = join(pki.dir, 'link.log');
    symlinkSync(target, link);
    await refused(link, /is a symbolic link/);
    const dangling = join(pki.dir, 'dangling.log');
    symlinkSync(join(pki.dir, 'created-by-svcnode.log'), dangling);
    await refused(dangling, /is a symbolic link/);
    expect(existsSync(join(pki.dir, 'created-by-svcnode.log'))).toBe(false);
    // A second name of the same file: the secrets would be readable there too.
    linkSync(target, join(pki.dir, 'hardlink.log'));
    await refused(join(pki.dir, 'hardlink.log'), /has 2 hard links/);
    expect(statSync(target).size).toBe(0);
    expect(backend.tcpConnections).toBe(0);

    // A new name is created (0600), and reused on the next run.
    const fresh = join(pki.dir, 'fresh.log');
    expect((await dryRun(node, ['--keylog', fresh, '--tls-only'])).code).toBe(0);
    expect(statSync(fresh).mode & 0o777).toBe(0o600);
    expect((await dryRun(node, ['--keylog', fresh, '--tls-only'])).code).toBe(0);
  });
});
