/**
 * The whole profiles (or nodes) directory removed or renamed while the worker runs: before, a
 * directory that could not be read read as "no change", so every profile and node stayed in use,
 * /healthz said "ok" and nothing was logged. Now, once two polls in a row cannot read it, every
 * file of it counts as removed (SVCNODE_PROFILE_REMOVED / SVCNODE_NODE_REMOVED), /healthz is
 * degraded naming the directory, one error line says so, and all comes back with the directory.
 * In-process worker (polls driven by the test), real Redis and mTLS backend, jobs through the queue.
 */
import { renameSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Result } from '../../src/invoke/result.js';
import type { ServiceNodeClient } from '../../src/queue/client.js';
import type { RunningWorker } from '../../src/queue/worker.js';
import type { MtlsServer } from '../helpers/servers.js';
import { startWorkerRig, type WorkerRig } from '../helpers/worker-rig.js';

interface Health {
  status: string;
  problems: { kind: string; file: string; code: string; message: string }[];
  staleProfiles: { name: string; code: string }[];
}

describe('a removed or renamed profiles or nodes directory', () => {
  let rig: WorkerRig | undefined;
  let worker: RunningWorker;
  let client: ServiceNodeClient;
  let backend: MtlsServer;
  let dir: string;
  const logs: Record<string, unknown>[] = [];

  const invoke = (): Promise<Result> => client.invoke('ping', {}, { timeoutMs: 10_000 });
  const health = async (): Promise<Health> => (await (await fetch(`http://127.0.0.1:${worker.metricsPort ?? 0}/healthz`)).json()) as Health;
  /** Error log lines that name `path`. */
  const errorLinesNaming = (path: string): Record<string, unknown>[] => logs.filter((l) => l.level === 50 && JSON.stringify(l).includes(path));

  beforeAll(async () => {
    // Polling is driven by the test (check()); the interval only has to be non-zero.
    rig = await startWorkerRig({ dirPrefix: 'svcnode-dir-removal-', worker: { reloadIntervalMs: 3_600_000, logger: pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) }) } });
    ({ worker, client, backend, dir } = rig);
  });
  afterAll(() => rig?.close());

  it('profiles directory renamed: one failed poll is tolerated, the second takes every profile out of use', async () => {
    const profiles = join(dir, 'profiles');
    expect((await invoke()).ok).toBe(true);
    renameSync(profiles, `${profiles}.gone`);
    await worker.watcher.check();
    // One poll may hit the moment of a symlink swap: nothing changes yet.
    expect((await invoke()).ok).toBe(true);
    expect((await health()).status).toBe('ok');

    await worker.watcher.check();
    const seen = backend.requests;
    const result = await invoke();
    expect(result.failure).toMatchObject({ category: 'invalid_input', code: 'SVCNODE_PROFILE_REMOVED' });
    expect(backend.requests).toBe(seen);
    const h = await health();
    expect(h.status).toBe('degraded');
    expect(h.problems).toEqual([expect.objectContaining({ kind: 'profile', file: profiles, code: 'SVCNODE_FILE_NOT_FOUND' })]);
    expect(h.staleProfiles).toEqual([expect.objectContaining({ name: 'bank', code: 'SVCNODE_PROFILE_REMOVED' })]);
    await worker.watcher.check();
    // One line for the directory (with its errno code and what to do), however many polls it stays gone.
    const lines = errorLinesNaming(`${profiles}: the profiles directory cannot be read`);
    expect(lines).toHaveLength(1);
    expect(JSON.stringify(lines[0])).toMatch(/ENOENT.*restore the directory/);
    // Its own line, not "reload round failed unexpectedly" (the message of a defect).
    expect(lines[0]).toMatchObject({ dir: profiles, code: 'SVCNODE_FILE_NOT_FOUND' });
    expect(logs.filter((l) => String(l.msg).includes('failed unexpectedly'))).toEqual([]);

    renameSync(`${profiles}.gone`, profiles);
    await worker.watcher.check();
    expect(logs.some((l) => l.dir === profiles && l.msg === 'directory readable again: its files are loaded')).toBe(true);
    expect((await invoke()).ok).toBe(true);
    expect(await health()).toMatchObject({ status: 'ok', problems: [], staleProfiles: [] });
  });

  it('nodes directory renamed: its nodes answer SVCNODE_NODE_REMOVED until it is back', async () => {
    const nodes = join(dir, 'nodes');
    renameSync(nodes, `${nodes}.gone`);
    await worker.nodeWatcher.check();
    expect((await invoke()).ok).toBe(true);
    await worker.nodeWatcher.check();
    const seen = backend.requests;
    expect((await invoke()).failure).toMatchObject({ category: 'invalid_input', code: 'SVCNODE_NODE_REMOVED' });
    expect(backend.requests).toBe(seen);
    const h = await health();
    expect(h.status).toBe('degraded');
    expect(h.problems).toEqual([expect.objectContaining({ kind: 'node', file: nodes, code: 'SVCNODE_FILE_NOT_FOUND' })]);
    expect(errorLinesNaming(`${nodes}: the nodes directory cannot be read`)).toHaveLength(1);

    renameSync(`${nodes}.gone`, nodes);
    await worker.nodeWatcher.check();
    expect((await invoke()).ok).toBe(true);
    expect(await health()).toMatchObject({ status: 'ok', problems: [] });
  });
});
