/**
 * A profile whose file disappears is taken out of use at the next poll (its nodes answer
 * invalid_input, /healthz is degraded, its metrics series go), and a rotation deletes the expiry
 * series of the subject it replaced. In-process worker, real Redis and mTLS backend.
 */
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintLeaf } from '../../src/pki/mint.js';
import { ServiceNodeClient } from '../../src/queue/client.js';
import type { RunningWorker } from '../../src/queue/worker.js';
import type { TestPki } from '../helpers/pki.js';
import type { MtlsServer } from '../helpers/servers.js';
import { startWorkerRig, type WorkerRig } from '../helpers/worker-rig.js';

describe('removed and rotated profiles', () => {
  let rig: WorkerRig | undefined;
  let pki: TestPki;
  let backend: MtlsServer;
  let worker: RunningWorker;
  let client: ServiceNodeClient;
  let dir: string;
  let profileFile: string;
  let profileText: string;

  const get = async (path: string): Promise<string> => (await fetch(`http://127.0.0.1:${worker.metricsPort ?? 0}${path}`)).text();
  const expirySeries = async (): Promise<string[]> => (await get('/metrics')).split('\n').filter((l) => l.startsWith('svcnode_certificate_expiry_timestamp_seconds{'));

  beforeAll(async () => {
    // Polling is driven by the test (check()); the interval only has to be non-zero.
    rig = await startWorkerRig({ dirPrefix: 'svcnode-removal-', worker: { reloadIntervalMs: 3_600_000 } });
    ({ pki, backend, worker, client, dir, profileFile, profileText } = rig);
  });
  afterAll(() => rig?.close());

  it('a rotation to a new client subject deletes the old subject’s expiry series', async () => {
    expect((await client.invoke('ping', {}, { timeoutMs: 10_000 })).ok).toBe(true);
    const before = (await expirySeries()).filter((l) => l.includes('role="client"'));
    expect(before).toHaveLength(1);
    const rotated = await mintLeaf({ subject: 'CN=svcnode-bot-rotated,O=svcnode tests', issuer: pki.intermediate, usage: 'client' });
    writeFileSync(join(dir, 'material', 'client.key.tmp'), rotated.keyPem, { mode: 0o600 });
    writeFileSync(join(dir, 'material', 'client.pem.tmp'), rotated.certPem + pki.intermediate.certPem);
    renameSync(join(dir, 'material', 'client.key.tmp'), join(dir, 'material', 'client.key'));
    renameSync(join(dir, 'material', 'client.pem.tmp'), join(dir, 'material', 'client.pem'));
    await worker.watcher.check();
    const after = (await expirySeries()).filter((l) => l.includes('role="client"'));
    expect(after).toHaveLength(1);
    expect(after[0]).toContain('svcnode-bot-rotated');
  });

  it('a removed profile is out of use at the next poll: invalid_input "profile removed", /healthz 503 "profiles stale", its series gone', async () => {
    rmSync(profileFile);
    await worker.watcher.check();
    const seen = backend.requests;
    const result = await client.invoke('ping', {}, { timeoutMs: 10_000 });
    expect(result.failure?.category).toBe('invalid_input');
    expect(result.failure?.code).toBe('SVCNODE_PROFILE_REMOVED');
    expect(result.failure?.message).toContain('profile removed');
    expect(backend.requests).toBe(seen);
    const health = JSON.parse(await get('/healthz')) as { status: string; reason?: string; staleProfiles: { name: string; code: string }[] };
    expect(health.status).toBe('down');
    expect(health.reason).toBe('profiles stale');
    expect(health.staleProfiles).toEqual([expect.objectContaining({ name: 'bank', code: 'SVCNODE_PROFILE_REMOVED' })]);
    expect((await expirySeries()).filter((l) => l.includes('profile="bank"'))).toEqual([]);
  });

  it('the profile is back in use when its file returns', async () => {
    writeFileSync(profileFile, profileText);
    await worker.watcher.check();
    expect((await client.invoke('ping', {}, { timeoutMs: 10_000 })).ok).toBe(true);
    expect((JSON.parse(await get('/healthz')) as { status: string }).status).toBe('ok');
    expect((await expirySeries()).filter((l) => l.includes('profile="bank"')).length).toBeGreaterThan(0);
  });
});
