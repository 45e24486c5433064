/**
 * A profile whose file disappears is taken out of use at the next poll (its nodes answer
 * invalid_input, /healthz is degraded, its metrics series go), and a rotation deletes the expiry
 * series of the subject it replaced. In-process worker, real Redis and mTLS backend.
 */
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
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
  const logs: Record<string, unknown>[] = [];

  const get = async (path: string): Promise<string> => (await fetch(`http://127.0.0.1:${worker.metricsPort ?? 0}${path}`)).text();
  const expirySeries = async (): Promise<string[]> => (await get('/metrics')).split('\n').filter((l) => l.startsWith('svcnode_certificate_expiry_timestamp_seconds{'));

  beforeAll(async () => {
    // Polling is driven by the test (check()); the interval only has to be non-zero.
    rig = await startWorkerRig({ dirPrefix: 'svcnode-removal-', worker: { reloadIntervalMs: 3_600_000, logger: pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) }) } });
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

  it('a removed profile is out of use at the next poll: invalid_input "profile removed", /healthz degraded (200), its series gone', async () => {
    rmSync(profileFile);
    await worker.watcher.check();
    const seen = backend.requests;
    const result = await client.invoke('ping', {}, { timeoutMs: 10_000 });
    expect(result.failure?.category).toBe('invalid_input');
    expect(result.failure?.code).toBe('SVCNODE_PROFILE_REMOVED');
    expect(result.failure?.message).toContain('profile removed');
    expect(backend.requests).toBe(seen);
    const response = await fetch(`http://127.0.0.1:${worker.metricsPort ?? 0}/healthz`);
    const health = (await response.json()) as { status: string; reason?: string; staleProfiles: { name: string; code: string }[] };
    // Removing a profile is a decision: the worker still serves every other node.
    expect(response.status).toBe(200);
    expect(health.status).toBe('degraded');
    expect(health.reason).toBeUndefined();
    expect(health.staleProfiles).toEqual([expect.objectContaining({ name: 'bank', code: 'SVCNODE_PROFILE_REMOVED' })]);
    expect((await expirySeries()).filter((l) => l.includes('profile="bank"'))).toEqual([]);
  });

  it('a profile added later that fails to load is a problem in /healthz, logged as such and counted, until it loads', async () => {
    const late = join(dir, 'profiles', 'late.json');
    writeFileSync(late, JSON.stringify({ client: { certificate: '../material/client.pem', key: '../material/client.key', passphrase: 'inline-secret' }, trust: { ca: ['../material/root.pem'] } }));
    await worker.watcher.check();
    const health = JSON.parse(await get('/healthz')) as { status: string; problems: { kind: string; file: string; code: string; message: string }[] };
    expect(health.problems).toEqual([expect.objectContaining({ kind: 'profile', file: late, code: 'SVCNODE_INVALID_PROFILE' })]);
    expect(JSON.stringify(health)).not.toContain('inline-secret');
    expect(await get('/metrics')).toMatch(/^svcnode_profile_load_failures_total\{profile="late"\} 1$/m);
    // Nothing was in use, so no "last good bundle" is kept.
    const logged = logs.filter((l) => l.profile === 'late').map((l) => String(l.msg));
    expect(logged).toEqual([expect.stringMatching(/^profile failed to load, its nodes answer invalid_input until it does: /)]);
    expect(JSON.stringify(logs)).not.toContain('inline-secret');
    // Fixed: the problem goes.
    writeFileSync(late, JSON.stringify({ client: { certificate: '../material/client.pem', key: '../material/client.key' }, trust: { ca: ['../material/root.pem'] } }));
    await worker.watcher.check();
    expect((JSON.parse(await get('/healthz')) as { problems: unknown[] }).problems).toEqual([]);
    // Removed after it had loaded: out of use like any profile; then its file returns broken and is removed again.
    writeFileSync(late, '{"client": ');
    await worker.watcher.check();
    rmSync(late);
    await worker.watcher.check();
    expect((JSON.parse(await get('/healthz')) as { staleProfiles: { name: string }[] }).staleProfiles.map((p) => p.name)).toContain('late');
  });

  it('the profile is back in use when its file returns', async () => {
    writeFileSync(profileFile, profileText);
    await worker.watcher.check();
    expect((await client.invoke('ping', {}, { timeoutMs: 10_000 })).ok).toBe(true);
    expect((await expirySeries()).filter((l) => l.includes('profile="bank"')).length).toBeGreaterThan(0);
    const health = JSON.parse(await get('/healthz')) as { status: string; staleProfiles: { name: string }[] };
    expect(health.staleProfiles.map((p) => p.name)).toEqual(['late']);
    writeFileSync(join(dir, 'profiles', 'late.json'), profileText);
    await worker.watcher.check();
    expect((JSON.parse(await get('/healthz')) as { status: string }).status).toBe('ok');
  });

  it('a profile that never loaded and is removed leaves nothing behind', async () => {
    const never = join(dir, 'profiles', 'never.json');
    writeFileSync(never, '{"trust": ');
    await worker.watcher.check();
    expect((JSON.parse(await get('/healthz')) as { problems: { file: string }[] }).problems.map((p) => p.file)).toEqual([never]);
    rmSync(never);
    await worker.watcher.check();
    expect(JSON.parse(await get('/healthz'))).toMatchObject({ status: 'ok', problems: [], staleProfiles: [] });
  });
});
