/**
 * A host name lookup that does not answer within timeouts.connectMs: getaddrinfo runs on libuv's
 * thread pool, where lookups a DNS server does not answer wait (and hold the threads). Reproduced
 * without touching the machine's resolver: a child process whose one pool thread
 * (UV_THREADPOOL_SIZE=1) is busy, so its lookup of `localhost` waits as behind a dead resolver.
 * Before, the Result said "TCP connect did not finish" with a firewall hint and connectMs 0; no
 * packet had gone out. A call to an IP address needs no lookup and goes through meanwhile.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Result } from '../../src/invoke/result.js';
import { distModule, outputOf, poolBusyFor } from '../helpers/child-script.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startMtlsServer, type MtlsServer } from '../helpers/servers.js';


/** Loads the profile, busies the one pool thread ~4 s, then calls `localhost` and `127.0.0.1` at once. */
const CHILD = `
import { loadProfile } from '${distModule('definitions/profiles.js')}';
import { invoke } from '${distModule('invoke/execute.js')}';
import { AgentPool } from '${distModule('tls/agents.js')}';
const [profileFile, port] = process.argv.slice(1);
const profile = await loadProfile(profileFile);
const deps = { profile: () => profile, agents: new AgentPool() };
const node = (id, host) => ({ id, request: { method: 'GET', url: 'https://' + host + ':' + port + '/' + id }, tls: { profile: 'bank', servername: 'localhost' }, retry: { limit: 0 }, timeouts: { connectMs: 1000 } });
${poolBusyFor(4_000)}
const [named, literal] = await Promise.all([invoke(node('named', 'localhost'), {}, deps), invoke(node('literal', '127.0.0.1'), {}, deps)]);
await busy;
deps.agents.destroy();
process.stdout.write(JSON.stringify({ named, literal }));
process.exit(0);
`;

describe('a host name lookup that does not answer in time', () => {
  let pki: TestPki;
  let backend: MtlsServer;
  beforeAll(async () => {
    pki = await createTestPki();
    backend = await startMtlsServer({ key: pki.server.keyPem, cert: pki.server.certPem + pki.intermediate.certPem, ca: pki.root.certPem });
  });
  afterAll(async () => {
    await backend?.close();
    await pki?.cleanup();
  });

  it('is reported as the lookup, with a DNS hint and the time spent; an IP address call goes through meanwhile', async () => {
    const out = await outputOf(process.execPath, ['--input-type=module', '-e', CHILD, pki.profile('bank'), String(backend.port)], { env: { ...process.env, UV_THREADPOOL_SIZE: '1' }, timeoutMs: 30_000 });
    const { named, literal } = JSON.parse(out) as { named: Result; literal: Result };
    expect(named.failure).toMatchObject({ phase: 'connect', category: 'timeout', code: 'SVCNODE_TIMEOUT', message: `localhost:${backend.port}: the host name lookup did not finish within 1000 ms (timeouts.connectMs): no connection was attempted` });
    expect(named.failure?.hint).toMatch(/^the DNS server did not answer in time: check the resolver in \/etc\/resolv\.conf/);
    // The time spent in the phase that ran out, not 0.
    expect(named.timings.connectMs).toBeGreaterThanOrEqual(990);
    expect(named.timings.connectMs).toBeLessThan(3_000);
    expect(literal.failure, JSON.stringify(literal.failure)).toBeNull();
  }, 40_000);
});
