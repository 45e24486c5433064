/**
 * Node definition files are reloaded while the worker runs (polled every reloadIntervalMs): edits,
 * new files, broken files (last good stays, /healthz degraded, counted), removed files
 * (SVCNODE_NODE_REMOVED) and a file broken at start that gets fixed. In-process worker on a real
 * Redis, real mTLS backend, jobs through the real queue.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Result } from '../../src/invoke/result.js';
import type { ServiceNodeClient } from '../../src/queue/client.js';
import type { RunningWorker } from '../../src/queue/worker.js';
import { waitFor } from '../helpers/net.js';
import type { MtlsServer } from '../helpers/servers.js';
import { startWorkerRig, type WorkerRig } from '../helpers/worker-rig.js';

/** Replace a file the way deploy tools do (write beside it, rename over it): a poll never sees it half-written. */
function replace(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

interface Health {
  problemsNotShown?: number;
  status: string;
  problems: { kind: string; file: string; code: string; message: string }[];
}

/** A node definition calling the backend at `path`. */
function definition(port: number, id: string, path: string, extra: { headers?: Record<string, string>; tls?: Record<string, unknown> } = {}): string {
  return JSON.stringify({ id, request: { method: 'GET', url: `https://localhost:${port}${path}`, ...(extra.headers ? { headers: extra.headers } : {}) }, tls: { profile: 'bank', ...extra.tls }, retry: { limit: 0 } });
}

describe('node definitions reload without a restart', () => {
  let rig: WorkerRig | undefined;
  let backend: MtlsServer;
  let worker: RunningWorker;
  let client: ServiceNodeClient;
  let nodes: string;
  /** What the backend received: path and x-version header of every request. */
  const received: { path: string | undefined; version: string | undefined }[] = [];

  /** The worker's log lines. */
  const logs: Record<string, unknown>[] = [];
  const logged = (fields: Record<string, unknown>): void => expect(logs).toContainEqual(expect.objectContaining(fields));

  const invoke = (nodeId: string): Promise<Result> => client.invoke(nodeId, {}, { timeoutMs: 10_000 });
  const get = async (path: string): Promise<string> => (await fetch(`http://127.0.0.1:${worker.metricsPort ?? 0}${path}`)).text();
  const health = async (): Promise<Health> => JSON.parse(await get('/healthz')) as Health;
  const def = (id: string, path: string, extra?: Parameters<typeof definition>[3]): string => definition(backend.port, id, path, extra);
  const failuresOf = async (file: string): Promise<number> => Number(/ (\d+)$/.exec((await get('/metrics')).split('\n').find((l) => l.startsWith(`svcnode_node_load_failures_total{file="${file}"}`)) ?? '')?.[1] ?? 0);

  beforeAll(async () => {
    rig = await startWorkerRig({
      dirPrefix: 'svcnode-node-reload-',
      worker: { reloadIntervalMs: 200, nodeSeriesGraceMs: 1_500, logger: pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) }) },
      nodes: (port) => ({
        'late.json': '{"id": "late", "request": {"method": "GET", "url": ',
        'steady.json': definition(port, 'steady', '/steady'),
        'gone.json': definition(port, 'gone', '/gone'),
        'renamed.json': definition(port, 'old-id', '/renamed'),
        'pinned.json': definition(port, 'pinned', '/pinned'),
      }),
    });
    ({ backend, worker, client } = rig);
    nodes = join(rig.dir, 'nodes');
    backend.server.on('request', (req: IncomingMessage) => received.push({ path: req.url, version: req.headers['x-version'] as string | undefined }));
  });
  afterAll(() => rig?.close());

  it('a file broken at start is reported, and comes into use once fixed', async () => {
    expect((await health()).problems).toEqual([expect.objectContaining({ kind: 'node', file: join(nodes, 'late.json'), code: 'SVCNODE_INVALID_DEFINITION' })]);
    expect((await invoke('late')).failure?.code).toBe('SVCNODE_UNKNOWN_NODE');
    replace(join(nodes, 'late.json'), def('late', '/late'));
    const result = await waitFor(async () => ((await invoke('late')).ok ? await invoke('late') : undefined), 5_000, 50, 'late in use');
    expect((result.response?.body as { path: string }).path).toBe('/late');
    expect(received.at(-1)?.path).toBe('/late');
    expect(await health()).toMatchObject({ status: 'ok', problems: [] });
  });

  it('an edited node: the next job after the poll calls the new path with the new headers', async () => {
    expect((await invoke('ping')).ok).toBe(true);
    expect(received.at(-1)).toEqual({ path: '/ping', version: undefined });
    replace(join(nodes, 'ping.json'), def('ping', '/v2/ping', { headers: { 'x-version': '2' } }));
    await waitFor(async () => (await invoke('ping')).ok && received.at(-1)?.path === '/v2/ping', 5_000, 50, 'new path');
    const before = received.length;
    expect((await invoke('ping')).ok).toBe(true);
    expect(received.slice(before)).toEqual([{ path: '/v2/ping', version: '2' }]);
    logged({ level: 30, msg: 'node reloaded', nodeId: 'ping', file: join(nodes, 'ping.json') });
  });

  it('changed TLS rules apply to the next job: a pin the server does not match fails the call', async () => {
    expect((await invoke('pinned')).ok).toBe(true);
    replace(join(nodes, 'pinned.json'), def('pinned', '/pinned', { tls: { pinnedPublicKeys: [`sha256//${'A'.repeat(43)}=`] } }));
    const refused = await waitFor(async () => {
      const r = await invoke('pinned');
      return r.ok ? undefined : r;
    }, 5_000, 50, 'pin in use');
    expect(refused.failure?.code).toBe('SVCNODE_PIN_MISMATCH');
    replace(join(nodes, 'pinned.json'), def('pinned', '/pinned'));
    await waitFor(async () => (await invoke('pinned')).ok, 5_000, 50, 'pin gone');
  });

  it('a new node and its new profile deployed together: no error about the profile; a profile that never comes: one', async () => {
    const profiles = join(rig?.dir ?? '', 'profiles');
    replace(join(nodes, 'together.json'), JSON.stringify({ id: 'together', request: { method: 'GET', url: `https://localhost:${backend.port}/together` }, tls: { profile: 'bank2' }, retry: { limit: 0 } }));
    replace(join(nodes, 'orphan.json'), JSON.stringify({ id: 'orphan', request: { method: 'GET', url: `https://localhost:${backend.port}/orphan` }, tls: { profile: 'nowhere' }, retry: { limit: 0 } }));
    const said = (): unknown[] => logs.filter((l) => String(l.msg).endsWith('which is not loaded')).map((l) => [l.level, l.nodeId]);
    try {
      await waitFor(() => logs.some((l) => l.nodeId === 'together' && l.msg === 'node loaded'), 5_000, 20, 'the node loaded first');
      replace(join(profiles, 'bank2.json'), readFileSync(join(profiles, 'bank.json'), 'utf8'));
      await waitFor(async () => (await invoke('together')).ok, 5_000, 50, 'together in use');
      await waitFor(() => said().length > 0, 5_000, 50, 'the orphan said');
      await sleep(1_500);
      // Before: "uses profile "bank2", which is not loaded" at error level too, never cleared, though the profile came a poll later.
      expect(said()).toEqual([[50, 'orphan']]);
    } finally {
      rmSync(join(nodes, 'orphan.json'));
      await waitFor(async () => (await health()).problems.length === 0, 5_000, 50, 'the orphan gone');
    }
  });

  it('a new node file: its jobs succeed without a restart', async () => {
    expect((await invoke('added')).failure?.code).toBe('SVCNODE_UNKNOWN_NODE');
    replace(join(nodes, 'added.json'), def('added', '/added'));
    await waitFor(async () => (await invoke('added')).ok, 5_000, 50, 'added in use');
    expect(received.at(-1)?.path).toBe('/added');
    logged({ level: 30, msg: 'node loaded', nodeId: 'added', file: join(nodes, 'added.json') });
  });

  it('invalid JSON over a node: the last good definition stays, /healthz degraded naming the file and code, counted; fixed: cleared', async () => {
    const file = join(nodes, 'steady.json');
    const counted = await failuresOf('steady.json');
    replace(file, '{"id": "steady", "request": {"method": "GET", "url": "https://localhost:1/broken"');
    const report = await waitFor(async () => {
      const h = await health();
      return h.status === 'degraded' ? h : undefined;
    }, 5_000, 50, 'degraded');
    expect(report.problems).toEqual([expect.objectContaining({ kind: 'node', file, code: 'SVCNODE_INVALID_DEFINITION' })]);
    expect(report.problems[0]?.message).toContain('not valid JSON');
    expect(await failuresOf('steady.json')).toBe(counted + 1);
    logged({ level: 50, file, nodeId: 'steady', code: 'SVCNODE_INVALID_DEFINITION', hint: 'fix the JSON syntax', msg: expect.stringContaining('node reload failed, keeping the last good definition') as unknown });
    const result = await invoke('steady');
    expect(result.ok).toBe(true);
    expect(received.at(-1)?.path).toBe('/steady');
    // A schema error and a template in the origin are refused the same way.
    replace(file, def('steady', '/steady').replace('"GET"', '"FETCH"'));
    await waitFor(async () => (await failuresOf('steady.json')) === counted + 2, 5_000, 50, 'schema error counted');
    replace(file, JSON.stringify({ id: 'steady', request: { method: 'GET', url: 'https://{{context.host}}/steady' }, tls: { profile: 'bank' } }));
    await waitFor(async () => (await failuresOf('steady.json')) === counted + 3, 5_000, 50, 'template error counted');
    const templated = (await health()).problems;
    expect(templated).toEqual([expect.objectContaining({ file, code: 'SVCNODE_INVALID_DEFINITION' })]);
    expect(templated[0]?.message).toContain('literal scheme, host and port');
    expect((await invoke('steady')).ok).toBe(true);
    expect(received.at(-1)?.path).toBe('/steady');
    replace(file, def('steady', '/steady/fixed'));
    await waitFor(async () => (await health()).status === 'ok', 5_000, 50, 'problem cleared');
    expect((await health()).problems).toEqual([]);
    expect((await invoke('steady')).ok).toBe(true);
    expect(received.at(-1)?.path).toBe('/steady/fixed');
  });

  it('a second file with an id in use is refused (degraded); the first file keeps the node', async () => {
    const dup = join(nodes, 'zz-dup.json');
    replace(dup, def('ping', '/dup'));
    const report = await waitFor(async () => {
      const h = await health();
      return h.status === 'degraded' ? h : undefined;
    }, 5_000, 50, 'degraded');
    expect(report.problems).toEqual([expect.objectContaining({ file: dup, code: 'SVCNODE_INVALID_DEFINITION' })]);
    expect(report.problems[0]?.message).toContain('already defined by');
    expect((await invoke('ping')).ok).toBe(true);
    expect(received.at(-1)?.path).toBe('/v2/ping');
    rmSync(dup);
    await waitFor(async () => (await health()).status === 'ok', 5_000, 50, 'problem cleared');
    expect((await invoke('ping')).ok).toBe(true);
  });

  it('a removed file: its jobs end as invalid_input SVCNODE_NODE_REMOVED without a call, /healthz stays ok; restored: works', async () => {
    const file = join(nodes, 'gone.json');
    expect((await invoke('gone')).ok).toBe(true);
    rmSync(file);
    const removed = await waitFor(async () => {
      const r = await invoke('gone');
      return r.failure?.code === 'SVCNODE_NODE_REMOVED' ? r : undefined;
    }, 5_000, 50, 'removed');
    expect(removed.failure).toMatchObject({ category: 'invalid_input', hint: 'restore the file or stop enqueueing this node' });
    expect(removed.failure?.message).toContain('"gone"');
    expect(removed.failure?.message).toContain(file);
    logged({ level: 40, msg: 'node removed: its jobs answer invalid_input until the file is back', nodeId: 'gone', file });
    const seen = backend.requests;
    expect((await invoke('gone')).failure?.code).toBe('SVCNODE_NODE_REMOVED');
    expect(backend.requests).toBe(seen);
    expect(await health()).toMatchObject({ status: 'ok', problems: [] });
    // Counted under the node (its id was loaded once: a bounded label), not as an unknown id.
    expect(await get('/metrics')).toMatch(/^svcnode_invocations_total\{node="gone",outcome="invalid_input"\} [1-9]/m);
    replace(file, def('gone', '/gone/back'));
    await waitFor(async () => (await invoke('gone')).ok, 5_000, 50, 'restored');
    expect(received.at(-1)?.path).toBe('/gone/back');
  });

  it("a removed node's series leave /metrics once no job has named it for the grace period (before: kept for the life of the process)", async () => {
    const series = async (): Promise<string[]> => (await get('/metrics')).split('\n').filter((l) => l.includes('node="brief"'));
    writeFileSync(join(nodes, 'brief.json'), def('brief', '/brief'));
    await waitFor(async () => (await invoke('brief')).ok, 5_000, 50, 'brief in use');
    // Invocations, attempts, handshakes and the duration histogram (buckets, sum, count).
    expect((await series()).length).toBeGreaterThan(12);
    rmSync(join(nodes, 'brief.json'));
    await waitFor(async () => (await invoke('brief')).failure?.code === 'SVCNODE_NODE_REMOVED', 5_000, 50, 'brief removed');
    // Kept while jobs still name it: its refusals are counted under it.
    expect(await series()).toContainEqual(expect.stringMatching(/^svcnode_invocations_total\{node="brief",outcome="invalid_input"\} [1-9]/));
    await waitFor(async () => (await series()).length === 0 || undefined, 10_000, 100, 'the series of brief gone');
    // A later job for the id counts it again, and its series go again once jobs stop.
    expect((await invoke('brief')).failure?.code).toBe('SVCNODE_NODE_REMOVED');
    expect(await series()).toEqual([expect.stringMatching(/^svcnode_invocations_total\{node="brief",outcome="invalid_input"\} 1$/)]);
    await waitFor(async () => (await series()).length === 0 || undefined, 10_000, 100, 'the series of brief gone again');
    // The other nodes' series stay.
    expect(await get('/metrics')).toMatch(/^svcnode_invocations_total\{node="steady",outcome="ok"\} [1-9]/m);
    // Back within the grace period: its series stay past it.
    writeFileSync(join(nodes, 'brief.json'), def('brief', '/brief'));
    await waitFor(async () => (await invoke('brief')).ok, 5_000, 50, 'brief back in use');
    rmSync(join(nodes, 'brief.json'));
    await waitFor(async () => (await invoke('brief')).failure?.code === 'SVCNODE_NODE_REMOVED', 5_000, 50, 'brief removed again');
    writeFileSync(join(nodes, 'brief.json'), def('brief', '/brief'));
    await waitFor(async () => (await invoke('brief')).ok, 5_000, 50, 'brief restored');
    await sleep(2_000);
    expect(await series()).toContainEqual(expect.stringMatching(/^svcnode_invocations_total\{node="brief",outcome="ok"\} [1-9]/));
  });

  it("a removed bad file's load-failure series leaves /metrics after the grace period; a fixed one keeps its count (before: every bad file name stayed)", async () => {
    const file = join(nodes, 'broken-once.json');
    writeFileSync(file, '{"id": "broken-once", ');
    await waitFor(async () => (await failuresOf('broken-once.json')) === 1, 5_000, 50, 'the bad file counted');
    rmSync(file);
    await waitFor(async () => !(await get('/metrics')).includes('file="broken-once.json"') || undefined, 10_000, 100, 'its series gone');
    // Fixed instead of removed: the count stays, past the grace period.
    const fixed = join(nodes, 'broken-then-fixed.json');
    writeFileSync(fixed, '{"id": "broken-then-fixed", ');
    await waitFor(async () => (await failuresOf('broken-then-fixed.json')) === 1, 5_000, 50, 'the second bad file counted');
    writeFileSync(fixed, def('broken-then-fixed', '/fixed'));
    await waitFor(async () => (await invoke('broken-then-fixed')).ok, 5_000, 50, 'fixed');
    await sleep(2_000);
    expect(await failuresOf('broken-then-fixed.json')).toBe(1);
  });

  it('/healthz lists at most 20 problems and counts the rest (before: every bad file, 217 KB for a thousand)', async () => {
    const bad = Array.from({ length: 25 }, (_, i) => join(nodes, `zz-bad-${String(i).padStart(2, '0')}.json`));
    for (const file of bad) writeFileSync(file, '{"id": ');
    const h = await waitFor(async () => {
      const report = await health();
      return (report.problemsNotShown ?? 0) >= 5 ? report : undefined;
    }, 10_000, 100, 'the bad files reported');
    expect(h.status).toBe('degraded');
    expect(h.problems).toHaveLength(20);
    for (const file of bad) rmSync(file);
    await waitFor(async () => (await health()).problemsNotShown === undefined || undefined, 10_000, 100, 'the count gone');
  });

  it('jobs for an unknown node: each answered invalid_input, logged once a minute per id (before: a line per job)', async () => {
    const before = logs.length;
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => invoke(i % 2 === 0 ? 'no-such-node' : 'no-such-other')));
    expect(results.every((r) => r.failure?.code === 'SVCNODE_UNKNOWN_NODE')).toBe(true);
    const lines = logs.slice(before).filter((l) => l.msg === 'unknown node');
    expect(lines.map((l) => l.nodeId).sort()).toEqual(['no-such-node', 'no-such-other']);
    // Still counted, every one.
    expect(await get('/metrics')).toMatch(/^svcnode_invocations_total\{node="\(unknown\)",outcome="invalid_input"\} (4\d|[5-9]\d|\d{3,})$/m);
  });

  it('a file whose node id changes: the new id comes into use, the old one answers SVCNODE_NODE_REMOVED', async () => {
    expect((await invoke('old-id')).ok).toBe(true);
    replace(join(nodes, 'renamed.json'), def('new-id', '/renamed/new'));
    await waitFor(async () => (await invoke('new-id')).ok, 5_000, 50, 'new id in use');
    expect(received.at(-1)?.path).toBe('/renamed/new');
    const old = await invoke('old-id');
    expect(old.failure?.code).toBe('SVCNODE_NODE_REMOVED');
    expect(old.failure?.message).toContain('new-id');
  });

  it('closing the worker stops polling the nodes directory', async () => {
    await worker.close(5_000);
    // Closed here: the rig's own close must not close it a second time.
    worker.close = () => Promise.resolve({ drained: true });
    replace(join(nodes, 'after.json'), def('after', '/after'));
    await sleep(800);
    expect(worker.registry.nodes.has('after')).toBe(false);
  });
});
