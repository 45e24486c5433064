/**
 * The monitoring that ships in examples/monitoring: `promtool check rules` and `promtool test
 * rules` pass; every alert has a firing and a non-firing case, and breaking any alert makes the
 * unit tests fail; every dashboard query is valid PromQL and names metrics (and labels) that a real
 * `svcnode worker`, started against a real Redis, exports on /metrics; the queue gauges sample a
 * real queue. Needs promtool (Debian package `prometheus`) and `npm run build`.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { Metrics } from '../../src/observability/metrics.js';
import { ServiceNodeClient } from '../../src/queue/client.js';
import { JOB_NAME, QUEUE_NAME } from '../../src/queue/constants.js';
import { startQueueSampler } from '../../src/queue/queue-metrics.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { waitFor } from '../helpers/net.js';
import { createQueueFixtures, nodeDef, spawnWorker, startBackend, type QueueFixtures, type WorkerProcess } from '../helpers/fixtures.js';
import { createOpensslPki } from '../helpers/openssl-ca.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import type { MtlsServer } from '../helpers/servers.js';

const run = promisify(execFile);
const DIR = join(REPO_ROOT, 'examples', 'monitoring');
const RULES = 'svcnode-alerts.yml';
const TESTS = 'svcnode-alerts.test.yml';

interface RuleFile {
  groups: Array<{ name: string; rules: Array<{ alert?: string; record?: string; expr: string }> }>;
}
interface RuleTests {
  tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts?: unknown[] }> }>;
}
interface Panel {
  type: string;
  title: string;
  targets?: Array<{ expr: string }>;
}

const rules = parse(readFileSync(join(DIR, RULES), 'utf8')) as RuleFile;
const alerts = rules.groups.flatMap((g) => g.rules).filter((r) => r.alert !== undefined);
const dashboard = JSON.parse(readFileSync(join(DIR, 'svcnode-dashboard.json'), 'utf8')) as { panels: Panel[]; templating: { list: Array<{ definition?: string }> } };
const queries = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));

async function promtool(args: string[], cwd = DIR): Promise<{ ok: boolean; output: string }> {
  try {
    const { stdout, stderr } = await run('promtool', args, { cwd, timeout: 30_000 });
    return { ok: true, output: stdout + stderr };
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}${e.message}` };
  }
}

/** Metric names a PromQL expression reads. */
function metricsOf(expr: string): string[] {
  return [...new Set([...expr.matchAll(/\b(svcnode_[a-z0-9_]+)\b/g)].map((m) => m[1] as string))];
}

describe('alert rules (promtool)', () => {
  it('promtool check rules and promtool test rules pass', async () => {
    const check = await promtool(['check', 'rules', RULES]);
    expect(check.ok, check.output).toBe(true);
    expect(check.output).toContain(`SUCCESS: ${alerts.length} rules found`);
    const test = await promtool(['test', 'rules', TESTS]);
    expect(test.ok, test.output).toBe(true);
  });

  it('covers the alerts the product promises, each with a firing and a non-firing case', () => {
    expect(alerts.map((a) => a.alert).sort()).toEqual([
      'SvcnodeCertificateExpiresIn30Days',
      'SvcnodeCertificateExpiresIn7Days',
      'SvcnodeClientCertificateRejected',
      'SvcnodeCrlOutdated',
      'SvcnodeJobsWaitTooLong',
      'SvcnodeNoWorkerTakingJobs',
      'SvcnodeNodeFailureRatioHigh',
      'SvcnodeProfileErrors',
      'SvcnodeProfileStale',
      'SvcnodeQueueBacklogGrowing',
    ]);
    const cases = (parse(readFileSync(join(DIR, TESTS), 'utf8')) as RuleTests).tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const { alert } of alerts) {
      const mine = cases.filter((c) => c.alertname === alert);
      expect(mine.some((c) => (c.exp_alerts ?? []).length > 0), `${alert} has no firing case`).toBe(true);
      expect(mine.some((c) => (c.exp_alerts ?? []).length === 0), `${alert} has no non-firing case`).toBe(true);
    }
  });

  it('the unit tests fail when any alert never fires or always fires', async () => {
    const mutate = async (name: string, expr: (original: string) => string): Promise<boolean> => {
      const dir = mkdtempSync(join(tmpdir(), 'svcnode-rules-'));
      try {
        const copy = structuredClone(rules);
        for (const rule of copy.groups.flatMap((g) => g.rules)) if (rule.alert === name) rule.expr = expr(rule.expr);
        writeFileSync(join(dir, RULES), stringify(copy));
        copyFileSync(join(DIR, TESTS), join(dir, TESTS));
        return (await promtool(['test', 'rules', TESTS], dir)).ok;
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    };
    const outcomes = await Promise.all(alerts.flatMap(({ alert }) => [mutate(alert as string, () => 'vector(1) < 0'), mutate(alert as string, (e) => `(${e}) or on() vector(1)`)]));
    expect(outcomes.every((ok) => !ok), JSON.stringify(outcomes)).toBe(true);
  });

  it('every dashboard query is valid PromQL (checked by promtool as recording rules)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'svcnode-dash-'));
    try {
      const asRules = { groups: [{ name: 'dashboard', rules: queries.map((q, i) => ({ record: `svcnode_dashboard_query_${i}`, expr: q.expr.replaceAll('$__rate_interval', '5m').replaceAll('$node', '.*') })) }] };
      writeFileSync(join(dir, 'dashboard.yml'), stringify(asRules));
      const check = await promtool(['check', 'rules', 'dashboard.yml'], dir);
      expect(check.ok, check.output).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the dashboard has the promised panels, each with a query', () => {
    const titles = dashboard.panels.filter((p) => p.type !== 'row').map((p) => p.title);
    for (const t of ['Invocations by node and outcome', 'Failures by node and category', 'Handshakes: full vs resumed', 'Call duration (histogram)', 'Queue depth by state', 'Oldest waiting job age', 'Certificate expiry timeline', 'Hours until CRL nextUpdate']) expect(titles).toContain(t);
    for (const p of dashboard.panels.filter((x) => x.type !== 'row')) expect(p.targets?.length, p.title).toBeGreaterThan(0);
  });
});

describe('metrics a real worker exports', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let backend: MtlsServer;
  let f: QueueFixtures;
  let worker: WorkerProcess | undefined;
  /** metric name → label names seen on its samples */
  const exported = new Map<string, Set<string>>();
  let scraped = '';

  beforeAll(async () => {
    [pki, redis] = await Promise.all([createTestPki(), startRedis()]);
    backend = await startBackend(pki);
    const url = `https://localhost:${backend.port}/accounts/{{context.accountId}}`;
    f = await createQueueFixtures(pki, [nodeDef('get-account', url), nodeDef('rogue-bot', url, 'rogue')]);
    // A profile with a trust.crl, so the CRL gauge has a sample (openssl ca -gencrl of a CA of its own).
    const ca = createOpensslPki(join(f.dir, 'openssl-ca'));
    const crl = ca.gencrl(ca.root, join(f.dir, 'root.crl'));
    f.writeProfile('crl-watch', { trust: { ca: [ca.root.cert], crl: [crl], revocation: { mode: 'soft' } } });
    // And one with an error finding (hard mode, the intermediate without a CRL), so the finding gauge has one.
    f.writeProfile('crl-gap', { trust: { ca: [ca.root.cert, ca.intermediate.cert], crl: [crl] } });
    // And one whose files then fail to reload, so the stale-profile gauge has a sample.
    const rotating = f.writeProfile('rotating', readFileSync(join(f.profilesDir, 'bank.json'), 'utf8').replace('"name": "bank"', '"name": "rotating"'));
    worker = await spawnWorker(f, redis.url, { concurrency: 2 });
    writeFileSync(rotating, '{"client": ');
    const client = new ServiceNodeClient({ redisUrl: redis.url });
    try {
      const results = await Promise.all([client.invoke('get-account', { accountId: '1' }, { timeoutMs: 20_000 }), client.invoke('rogue-bot', { accountId: '2' }, { timeoutMs: 20_000 })]);
      expect(results.map((r) => r.failure?.category ?? 'ok')).toEqual(['ok', 'client_cert_rejected']);
    } finally {
      await client.close();
    }
    const metricsUrl = `http://127.0.0.1:${worker.metricsPort}/metrics`;
    await waitFor(async () => (await (await fetch(metricsUrl)).text()).includes('svcnode_profile_stale{'), 15_000);
    const text = await (await fetch(metricsUrl)).text();
    scraped = text;
    for (const line of text.split('\n')) {
      const type = /^# TYPE (\S+) (\w+)/.exec(line);
      if (type) {
        const name = type[1] as string;
        exported.set(name, exported.get(name) ?? new Set());
        if (type[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) exported.set(name + s, new Set(['le']));
        continue;
      }
      const sample = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? /.exec(line);
      if (!sample) continue;
      const labels = exported.get(sample[1] as string) ?? new Set<string>();
      for (const m of (sample[2] ?? '').matchAll(/(\w+)="/g)) labels.add(m[1] as string);
      exported.set(sample[1] as string, labels);
    }
  });

  afterAll(async () => {
    await worker?.proc.stop('SIGTERM');
    await backend?.close();
    await redis?.close();
    await f?.cleanup();
    await pki?.cleanup();
  });

  it('every metric a dashboard panel, the node variable or an alert rule reads is exported', () => {
    const sources = [...queries, ...alerts.map((a) => ({ panel: `alert ${a.alert}`, expr: a.expr })), ...dashboard.templating.list.filter((v) => v.definition).map((v) => ({ panel: 'variable', expr: v.definition as string }))];
    const missing = sources.flatMap((s) => metricsOf(s.expr).filter((m) => !exported.has(m)).map((m) => `${s.panel}: ${m}`));
    expect(missing).toEqual([]);
    expect(sources.flatMap((s) => metricsOf(s.expr)).length).toBeGreaterThan(20);
  });

  it('every label a query matches on or groups by exists on the metrics it reads', () => {
    const problems: string[] = [];
    for (const s of [...queries, ...alerts.map((a) => ({ panel: `alert ${a.alert}`, expr: a.expr }))]) {
      for (const m of s.expr.matchAll(/\b(svcnode_[a-z0-9_]+)\{([^}]*)\}/g)) {
        for (const l of (m[2] ?? '').matchAll(/(\w+)\s*[=!]~?/g)) if (!exported.get(m[1] as string)?.has(l[1] as string)) problems.push(`${s.panel}: ${m[1]} has no label ${l[1]}`);
      }
      const names = metricsOf(s.expr);
      for (const by of s.expr.matchAll(/\bby \(([^)]*)\)/g)) {
        for (const label of (by[1] ?? '').split(',').map((x) => x.trim())) {
          if (!names.some((n) => exported.get(n)?.has(label) || exported.get(`${n}_bucket`)?.has(label))) problems.push(`${s.panel}: no metric of "${s.expr}" has label ${label}`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('the scraped exposition passes `promtool check metrics` (no gauge named like a counter)', async () => {
    const file = join(f.dir, 'scraped.prom');
    writeFileSync(file, scraped);
    // Before: prom-client's svcnode_nodejs_active_{handles,requests,resources}_total, gauges ending in _total (exit 3).
    const checked = await run('sh', ['-c', `promtool check metrics < ${JSON.stringify(file)}`]).then(
      ({ stdout, stderr }) => ({ ok: true, output: stdout + stderr }),
      (error: { stdout?: string; stderr?: string }) => ({ ok: false, output: `${error.stdout ?? ''}${error.stderr ?? ''}` }),
    );
    expect(checked).toEqual({ ok: true, output: '' });
  });

  it('answers /metrics and /healthz with a query string too (before: 404)', async () => {
    const base = `http://127.0.0.1:${worker?.metricsPort ?? 0}`;
    expect((await fetch(`${base}/metrics?cache=1`)).status).toBe(200);
    expect((await fetch(`${base}/healthz?probe=k8s`)).status).toBe(200);
    expect((await fetch(`${base}/other?x`)).status).toBe(404);
  });

  it('reports itself up and the queue empty', () => {
    expect(scraped).toMatch(/^svcnode_worker_up 1$/m);
    expect(scraped).toMatch(/^svcnode_queue_jobs\{state="waiting"\} 0$/m);
    expect(scraped).toMatch(/^svcnode_queue_oldest_waiting_age_seconds 0$/m);
  });
});

describe('queue sampler', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.close();
  });

  it('publishes jobs per state, the age of the next job to be taken, and worker up/down', async () => {
    const queue = new Queue(QUEUE_NAME, { connection: { host: redis.host, port: redis.port } });
    const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
    const metrics = new Metrics();
    let up = true;
    try {
      const first = await queue.add(JOB_NAME, { nodeId: 'a', context: {} });
      await new Promise((r) => setTimeout(r, 20));
      await queue.add(JOB_NAME, { nodeId: 'b', context: {} });
      await queue.add(JOB_NAME, { nodeId: 'c', context: {} }, { delay: 60_000 });
      const now = first.timestamp + 42_000;
      const sampler = startQueueSampler(metrics, connection, { isUp: () => up, now: () => now, intervalMs: 60_000 });
      await sampler.sample();
      const value = async (name: string, labels: Record<string, string> = {}): Promise<number | undefined> =>
        (await metrics.registry.getSingleMetric(name)?.get())?.values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value;
      expect(await value('svcnode_queue_jobs', { state: 'waiting' })).toBe(2);
      expect(await value('svcnode_queue_jobs', { state: 'delayed' })).toBe(1);
      expect(await value('svcnode_queue_jobs', { state: 'active' })).toBe(0);
      expect(await value('svcnode_queue_oldest_waiting_age_seconds')).toBe(42);
      expect(await value('svcnode_worker_up')).toBe(1);
      up = false;
      await sampler.sample();
      expect(await value('svcnode_worker_up')).toBe(0);
      await queue.drain(true);
      await sampler.sample();
      expect(await value('svcnode_queue_oldest_waiting_age_seconds')).toBe(0);
      sampler.stop();
    } finally {
      await queue.close();
      connection.disconnect();
    }
  });

  it('reports the worker down while Redis does not answer, though its BullMQ worker still counts as taking jobs', async () => {
    const lost = await startRedis();
    const connection = new Redis(lost.url, { maxRetriesPerRequest: null });
    connection.on('error', () => undefined);
    const metrics = new Metrics();
    const up = async (): Promise<number | undefined> => (await metrics.registry.getSingleMetric('svcnode_worker_up')?.get())?.values[0]?.value;
    const sampler = startQueueSampler(metrics, connection, { isUp: () => true, intervalMs: 60_000 });
    try {
      await sampler.sample();
      expect(await up()).toBe(1);
      lost.kill();
      // The sample's commands wait for a reconnect that does not come; the next tick says so.
      void sampler.sample();
      await new Promise((r) => setTimeout(r, 200));
      void sampler.sample();
      // Before: 1, for as long as Redis stayed away (the alert on no worker taking jobs never fired).
      expect(await up()).toBe(0);
    } finally {
      sampler.stop();
      connection.disconnect();
      await lost.close();
    }
  });
});
