import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { mintLeaf } from '../../src/pki/mint.js';
import { ServiceNodeClient } from '../../src/queue/client.js';
import type { RunningWorker } from '../../src/queue/worker.js';
import type { Result } from '../../src/invoke/result.js';
import { waitFor } from '../helpers/net.js';
import type { TestPki } from '../helpers/pki.js';
import type { MtlsServer } from '../helpers/servers.js';
import { startWorkerRig, type WorkerRig } from '../helpers/worker-rig.js';

/** Replace a file the way deploy tools do: write beside it, then rename over it. */
function replace(path: string, content: string): void {
  writeFileSync(`${path}.tmp`, content, { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}

describe('rotation without restart', () => {
  let rig: WorkerRig | undefined;
  let pki: TestPki;
  let backend: MtlsServer;
  let worker: RunningWorker;
  let client: ServiceNodeClient;
  let material: string;
  /** The client certificate file in use before the corrupt replacement. */
  let goodCert = '';
  const logs: Array<{ msg: string; profile?: string; level: number }> = [];

  beforeAll(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as (typeof logs)[number]);
        done();
      },
    });
    rig = await startWorkerRig({ dirPrefix: 'svcnode-rotation-', redis: { appendonly: true }, worker: { concurrency: 8, reloadIntervalMs: 100, logger: pino({ level: 'info' }, sink) } });
    ({ pki, backend, worker, client } = rig);
    material = join(rig.dir, 'material');
  });
  afterAll(() => rig?.close());

  it('swaps in a new client certificate under load: no job lost or failed, the backend sees the new identity', async () => {
    const rotated = await mintLeaf({ subject: 'CN=svcnode-bot-rotated,O=svcnode tests', issuer: pki.intermediate, usage: 'client' });
    const pending: Promise<Result>[] = [];
    let rotatedAt = -1;
    for (let i = 0; i < 60; i++) {
      pending.push(client.invoke('ping', {}, { timeoutMs: 30_000 }));
      if (i === 20) {
        // key and certificate are replaced one after the other: in between the pair does not match
        replace(join(material, 'client.key'), rotated.keyPem);
        await sleep(150);
        replace(join(material, 'client.pem'), rotated.certPem + pki.intermediate.certPem);
        rotatedAt = backend.clientSubjects.length;
      }
      await sleep(15);
    }
    const results = await Promise.all(pending);
    expect(results.filter((r) => !r.ok).map((r) => r.failure?.category)).toEqual([]);
    await waitFor(async () => (await client.invoke('ping', {}, { timeoutMs: 10_000 })).ok && backend.lastClientSubject?.CN === 'svcnode-bot-rotated', 10_000);
    const cns = backend.clientSubjects.map((s) => s?.CN);
    expect(cns.slice(0, rotatedAt)).toContain('svcnode-bot');
    expect(cns).toContain('svcnode-bot-rotated');
    expect(worker.registry.profiles.get('bank')?.client?.leaf.subject).toContain('svcnode-bot-rotated');
    // The old material's agent was retired on reload: only the new one is left in the pool.
    expect(worker.agents.size).toBe(1);
    // 60 calls plus a rotation and full handshakes: on a machine busy with other test files this
    // passed 30 s once (the calls themselves allow 30 s each).
  }, 60_000);

  it('keeps the last good identity when the replacement is corrupt, and reports the failed reload', async () => {
    goodCert = readFileSync(join(material, 'client.pem'), 'utf8');
    replace(join(material, 'client.pem'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    await worker.watcher.check();
    expect(worker.registry.staleProfiles().map((s) => s.name)).toEqual(['bank']);
    // Degraded, not down: the worker calls with the last good bundle, and a restart on a 503 would lose it.
    const health = await fetch(`http://127.0.0.1:${worker.metricsPort}/healthz`);
    expect(health.status).toBe(200);
    const report = (await health.json()) as { status: string; reason?: string; staleProfiles: Array<{ name: string; code: string }> };
    expect([report.status, report.reason, report.staleProfiles.map((p) => p.name)]).toEqual(['degraded', undefined, ['bank']]);
    // And it can be alerted on: one series per stale profile, with the code of the failure.
    const metrics = await (await fetch(`http://127.0.0.1:${worker.metricsPort}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`^svcnode_profile_stale\\{profile="bank",code="${report.staleProfiles[0]?.code}"\\} 1$`, 'm'));
    const seen = backend.requests;
    const results = await Promise.all(Array.from({ length: 10 }, () => client.invoke('ping', {}, { timeoutMs: 10_000 })));
    expect(results.every((r) => r.ok)).toBe(true);
    expect(backend.requests - seen).toBe(10);
    expect(backend.lastClientSubject?.CN).toBe('svcnode-bot-rotated');
  });

  it('says so when the files come back as they were: the reload failure is over, /healthz ok again', async () => {
    const before = logs.length;
    replace(join(material, 'client.pem'), goodCert);
    await worker.watcher.check();
    expect(worker.registry.staleProfiles()).toEqual([]);
    const health = (await (await fetch(`http://127.0.0.1:${worker.metricsPort}/healthz`)).json()) as { status: string };
    expect(health.status).toBe('ok');
    expect(await (await fetch(`http://127.0.0.1:${worker.metricsPort}/metrics`)).text()).not.toMatch(/^svcnode_profile_stale\{/m);
    // Before: the failure was logged at error level, its end not at all (the material is the one in use, so no "profile reloaded").
    expect(logs.slice(before).filter((l) => l.profile === 'bank').map((l) => [l.level, l.msg])).toEqual([[30, 'profile loads again, with the material already in use: its reload failure is over']]);
  });

  it('an expired certificate copied over the one in use is refused like any bad bundle: the last good identity stays, the profile is stale', async () => {
    const old = await mintLeaf({ subject: 'CN=svcnode-bot-old,O=svcnode tests', issuer: pki.intermediate, usage: 'client', notBefore: new Date(Date.now() - 400 * 86_400_000), notAfter: new Date(Date.now() - 30 * 86_400_000) });
    const keyBefore = readFileSync(join(material, 'client.key'), 'utf8');
    replace(join(material, 'client.pem'), old.certPem + pki.intermediate.certPem);
    replace(join(material, 'client.key'), old.keyPem);
    await worker.watcher.check();
    // Before: "profile reloaded", and every call failed SVCNODE_CLIENT_CERT_EXPIRED.
    expect(worker.registry.staleProfiles()).toEqual([expect.objectContaining({ name: 'bank', code: 'SVCNODE_RENEWAL_OUT_OF_DATE' })]);
    const r = await client.invoke('ping', {}, { timeoutMs: 10_000 });
    expect(r.ok, JSON.stringify(r.failure)).toBe(true);
    expect(backend.lastClientSubject?.CN).toBe('svcnode-bot-rotated');
    replace(join(material, 'client.pem'), goodCert);
    replace(join(material, 'client.key'), keyBefore);
    await worker.watcher.check();
    expect(worker.registry.staleProfiles()).toEqual([]);
  });

  it('a renewal staged before its notBefore: the identity in use stays, /healthz ok, and the worker switches when it becomes valid', async () => {
    const validFrom = Date.now() + 2_500;
    const staged = await mintLeaf({ subject: 'CN=svcnode-bot-staged,O=svcnode tests', issuer: pki.intermediate, usage: 'client', notBefore: new Date(validFrom), notAfter: new Date(validFrom + 365 * 86_400_000) });
    const before = logs.length;
    replace(join(material, 'client.pem'), staged.certPem + pki.intermediate.certPem);
    replace(join(material, 'client.key'), staged.keyPem);
    await worker.watcher.check();
    expect(logs.slice(before).some((l) => l.level === 40 && l.msg.startsWith('profile reload deferred: ') && l.msg.includes('"CN=svcnode-bot-staged, O=svcnode tests" is not valid before'))).toBe(true);
    expect(worker.registry.staleProfiles()).toEqual([]);
    expect((await fetch(`http://127.0.0.1:${worker.metricsPort}/healthz`)).status).toBe(200);
    // Before: taken at once, and every call failed SVCNODE_CLIENT_CERT_NOT_YET_VALID until then.
    const early = await client.invoke('ping', {}, { timeoutMs: 10_000 });
    expect(early.ok, JSON.stringify(early.failure)).toBe(true);
    expect(backend.lastClientSubject?.CN).toBe('svcnode-bot-rotated');
    // The files do not change again: the watcher comes back to them at notBefore by itself (it polls every 100 ms here).
    await waitFor(async () => Date.now() > validFrom && (await client.invoke('ping', {}, { timeoutMs: 10_000 })).ok && backend.lastClientSubject?.CN === 'svcnode-bot-staged', 15_000, 200, 'the staged renewal in use');
    expect(worker.registry.staleProfiles()).toEqual([]);
  }, 30_000);
});
