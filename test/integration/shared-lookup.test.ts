/**
 * Calls to a host name the DNS server does not answer share one lookup. getaddrinfo runs on
 * libuv's thread pool, where lookups get half the threads (2 of 4), and cannot be cancelled:
 * before, each such call held a slot until the resolver gave up, so two jobs for one such name
 * held both, and a call to a healthy name (even one in /etc/hosts) then timed out in its own lookup.
 *
 * Real getaddrinfo against a real (silent) resolver, without touching the machine's: the child
 * runs in a mount namespace (`unshare -m`, root) whose /etc/resolv.conf names a UDP socket of this
 * test that reads every query and answers none.
 */
import { execFileSync } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Result } from '../../src/invoke/result.js';
import { distModule, outputOf } from '../helpers/child-script.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startMtlsServer, type MtlsServer } from '../helpers/servers.js';

/** An address of the loopback range nothing else on the machine serves DNS on. */
const RESOLVER = '127.0.0.29';
const HUNG = 'hung.svcnode.test';

/** What both children start with: a profile, agents, `node(id, host, connectMs)` calling the backend at `port`, `sleep`, and the lookup module's test hooks. */
const PRELUDE = `
import { loadProfile } from '${distModule('definitions/profiles.js')}';
import { invoke } from '${distModule('invoke/execute.js')}';
import { AgentPool } from '${distModule('tls/agents.js')}';
import { lookupsInFlight, unansweredNames } from '${distModule('tls/lookup.js')}';
const [profileFile, port] = process.argv.slice(2);
const profile = await loadProfile(profileFile);
const deps = { profile: () => profile, agents: new AgentPool() };
const node = (id, host, connectMs) => ({ id, request: { method: 'GET', url: 'https://' + host + ':' + port + '/' + id }, tls: { profile: 'bank', servername: 'localhost' }, retry: { limit: 0 }, timeouts: { connectMs } });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
`;

/** Eight calls to the name DNS does not answer, then, 300 ms later, one to `localhost` (answered from /etc/hosts). */
const CHILD = `${PRELUDE}
const hung = Array.from({ length: 8 }, (_, i) => invoke(node('hung' + i, '${HUNG}', 1500), {}, deps));
await sleep(300);
const healthy = await invoke(node('healthy', 'localhost', 2500), {}, deps);
const failed = await Promise.all(hung);
deps.agents.destroy();
process.stdout.write(JSON.stringify({ healthy, failed }));
process.exit(0);
`;

/**
 * Two names the resolver does not answer, each called once (both lookups hold a thread until the
 * resolver gives up), then again, and 300 ms later `localhost`.
 */
const TWO_NAMES_CHILD = `${PRELUDE}
const names = ['a.${HUNG}', 'b.${HUNG}'];
await Promise.all(names.map((host) => invoke(node('first', host, 1500), {}, deps)));
while (lookupsInFlight() > 0) await sleep(50);
const remembered = unansweredNames();
const [a, b] = names.map((host) => invoke(node('again', host, 1500), {}, deps));
await sleep(300);
const healthy = await invoke(node('healthy', 'localhost', 2500), {}, deps);
const again = await Promise.all([a, b]);
deps.agents.destroy();
process.stdout.write(JSON.stringify({ remembered, healthy, again }));
process.exit(0);
`;

function canUnshare(): boolean {
  try {
    execFileSync('unshare', ['-m', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(process.getuid?.() !== 0 || !canUnshare())('host name lookups (a child in its own mount namespace: needs root)', () => {
  let pki: TestPki;
  let backend: MtlsServer;
  let dir: string;
  let resolver: Socket;
  const queries: string[] = [];

  beforeAll(async () => {
    pki = await createTestPki();
    backend = await startMtlsServer({ key: pki.server.keyPem, cert: pki.server.certPem + pki.intermediate.certPem, ca: pki.root.certPem });
    dir = await mkdtemp(join(tmpdir(), 'svcnode-lookup-'));
    // One try of 4 s per query: longer than every call's connectMs.
    await writeFile(join(dir, 'resolv.conf'), `nameserver ${RESOLVER}\noptions timeout:4 attempts:1\n`);
    await writeFile(join(dir, 'child.mjs'), CHILD);
    await writeFile(join(dir, 'two-names.mjs'), TWO_NAMES_CHILD);
    resolver = createSocket('udp4');
    // The question's name, from the DNS message: labels from byte 12.
    resolver.on('message', (msg: Buffer) => {
      const labels: string[] = [];
      for (let at = 12; at < msg.length && msg[at] !== 0; at += (msg[at] as number) + 1) labels.push(msg.subarray(at + 1, at + 1 + (msg[at] as number)).toString('latin1'));
      queries.push(labels.join('.'));
    });
    await new Promise<void>((resolve) => resolver.bind(53, RESOLVER, resolve));
  });
  afterAll(async () => {
    resolver?.close();
    await backend?.close();
    await pki?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Runs `child` with node in a mount namespace whose /etc/resolv.conf names the silent resolver. */
  const run = (child: string): Promise<string> => {
    const script = 'mount --bind "$0" /etc/resolv.conf && exec "$@"';
    return outputOf('unshare', ['-m', '--', 'sh', '-c', script, join(dir, 'resolv.conf'), process.execPath, join(dir, child), pki.profile('bank'), String(backend.port)], { timeoutMs: 30_000 });
  };

  it('share one getaddrinfo per name: calls to a name the resolver does not answer leave the thread pool to the other names', async () => {
    const out = await run('child.mjs');
    const { healthy, failed } = JSON.parse(out) as { healthy: Result; failed: Result[] };

    // Before: the eight lookups held both slots lookups have (half of the 4 threads), and this one waited past its 2.5 s.
    expect(healthy.failure, JSON.stringify(healthy.failure)).toBeNull();
    expect(healthy.response?.status).toBe(200);
    expect(failed).toHaveLength(8);
    for (const r of failed) {
      expect(r.failure).toMatchObject({ phase: 'connect', category: 'timeout' });
      expect(r.failure?.message).toContain('the host name lookup did not finish within 1500 ms');
    }
    // One getaddrinfo for the eight calls: one question per address family (before: 4 × 2 at once, the rest later).
    const asked = queries.filter((q) => q === HUNG);
    expect(asked.length, JSON.stringify(queries)).toBeGreaterThanOrEqual(1);
    expect(asked.length, JSON.stringify(queries)).toBeLessThanOrEqual(2);
  }, 40_000);

  it('two names that did not answer hold one thread between them: the second fails at once while the first is looked up, and other names keep the other thread', async () => {
    const { remembered, healthy, again } = JSON.parse(await run('two-names.mjs')) as { remembered: string[]; healthy: Result; again: Result[] };
    expect(remembered.sort()).toEqual([`a.${HUNG}`, `b.${HUNG}`]);
    // Before: both lookups were made again, held both threads, and this call timed out in its own lookup.
    expect(healthy.failure, JSON.stringify(healthy.failure)).toBeNull();
    const [a, b] = again;
    expect(a?.failure?.message).toContain('the host name lookup did not finish within 1500 ms');
    expect(b?.failure).toMatchObject({ phase: 'connect', category: 'connect_failed', code: 'EAI_AGAIN' });
    expect(b?.failure?.message).toContain(`getaddrinfo EAI_AGAIN b.${HUNG}: not looked up: its last lookup did not answer within 2 s, and another lookup that does not answer holds a thread`);
    expect(b?.timings.totalMs).toBeLessThan(1_000);
  }, 40_000);
});
