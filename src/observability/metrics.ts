import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Result } from '../invoke/result.js';
import { profileCertificates } from '../pki/certificates.js';
import { errorFindingsAt } from '../pki/findings.js';
import type { LoadedProfile } from '../pki/types.js';
import type { RevocationCheck } from '../tls/revocation.js';
import { SlicedHistogram } from './sliced-histogram.js';

/**
 * Per-call counts kept in a plain map and added to their prom-client counter when it is
 * collected (a scrape): prom-client validates and hashes the labels on every inc, which showed
 * in the worker's per-job CPU (npm run bench).
 */
class PendingCounts<L extends string> {
  private readonly pending = new Map<string, { labels: Record<L, string>; n: number }>();

  constructor(private readonly names: readonly [L, L]) {}

  add(a: string, b: string): void {
    const key = `${a}\u0000${b}`;
    const entry = this.pending.get(key);
    if (entry) entry.n++;
    else this.pending.set(key, { labels: { [this.names[0]]: a, [this.names[1]]: b } as Record<L, string>, n: 1 });
  }

  flushInto(counter: Counter<L>): void {
    for (const { labels, n } of this.pending.values()) counter.inc(labels, n);
    this.pending.clear();
  }
}

/** How long a removed node's series stay after the last job that named it: some scrape intervals. @defaultValue 10 min */
export const NODE_SERIES_GRACE_MS = 10 * 60_000;

/** Prometheus metrics of a worker process. */
export class Metrics {
  readonly registry = new Registry();

  private readonly pendingInvocations = new PendingCounts(['node', 'outcome'] as const);
  private readonly pendingAttempts = new PendingCounts(['node', 'outcome'] as const);

  readonly invocations: Counter<'node' | 'outcome'> = new Counter({
    name: 'svcnode_invocations_total',
    help: 'Finished invocations by node and outcome (ok or failure category)',
    labelNames: ['node', 'outcome'] as const,
    registers: [this.registry],
    collect: (): void => this.pendingInvocations.flushInto(this.invocations),
  });

  readonly attempts: Counter<'node' | 'outcome'> = new Counter({
    name: 'svcnode_attempts_total',
    help: 'Call attempts by node and outcome, retries included',
    labelNames: ['node', 'outcome'] as const,
    registers: [this.registry],
    collect: (): void => this.pendingAttempts.flushInto(this.attempts),
  });

  readonly handshakes = new Counter({
    name: 'svcnode_handshakes_total',
    help: 'New TLS connections by node and result (ok, resumed, or the failure category)',
    labelNames: ['node', 'result'] as const,
    registers: [this.registry],
  });

  /** Per node: rendered in slices at a scrape (prom-client renders a metric in one piece, which at thousands of nodes held the thread for a scrape). */
  readonly duration = new SlicedHistogram('svcnode_call_duration_seconds', 'Duration of one call attempt', 'node', [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]);

  readonly certificateExpiry = new Gauge({
    name: 'svcnode_certificate_expiry_timestamp_seconds',
    help: 'notAfter of every loaded certificate (client, chain, trust) as a Unix timestamp',
    labelNames: ['profile', 'role', 'subject'] as const,
    registers: [this.registry],
  });

  readonly profileErrorFindings = new Gauge({
    name: 'svcnode_profile_error_findings',
    help: 'Error findings of each loaded profile by code (certs verify lists them): its calls fail while they last, e.g. CRL_UNAVAILABLE in hard mode, CLIENT_CERT_REVOKED',
    labelNames: ['profile', 'code'] as const,
    registers: [this.registry],
  });

  readonly connectionReplays = new Counter({
    name: 'svcnode_connection_replays_total',
    help: 'Requests sent again on another connection because a kept-alive one closed under them unanswered (lower timeouts.keepAliveMs when it grows)',
    labelNames: ['node'] as const,
    registers: [this.registry],
  });

  readonly deferredJobs = new Counter({
    name: 'svcnode_jobs_deferred_total',
    help: 'Jobs put back to wait (not sent, no attempt counted) because their node\'s calls were timing out and held its share of the worker\'s slots (--max-slow-calls-per-node: a quarter by default)',
    labelNames: ['node'] as const,
    registers: [this.registry],
  });

  readonly profileLoadFailures = new Counter({
    name: 'svcnode_profile_load_failures_total',
    help: 'Profiles that failed to load or reload',
    labelNames: ['profile'] as const,
    registers: [this.registry],
  });

  /** Where `svcnode_profile_stale` reads the stale profiles from at each scrape (the worker's registry). */
  private staleSource: () => readonly { name: string; code: string }[] = () => [];

  readonly profileStale: Gauge<'profile' | 'code'> = new Gauge({
    name: 'svcnode_profile_stale',
    help: '1 for each profile that runs on its last good bundle because its files failed to reload (code: why); /healthz lists it under staleProfiles',
    labelNames: ['profile', 'code'] as const,
    registers: [this.registry],
    collect: (): void => {
      this.profileStale.reset();
      for (const p of this.staleSource()) if (p.code !== 'SVCNODE_PROFILE_REMOVED') this.profileStale.set({ profile: p.name, code: p.code }, 1);
    },
  });

  /** Publish the registry's stale profiles (a removed profile is a decision, not counted). */
  staleProfilesFrom(source: () => readonly { name: string; code: string }[]): void {
    this.staleSource = source;
  }

  readonly nodeLoadFailures = new Counter({
    name: 'svcnode_node_load_failures_total',
    help: 'Node definition files that failed to load or reload',
    labelNames: ['file'] as const,
    registers: [this.registry],
  });

  readonly queueJobs = new Gauge({
    name: 'svcnode_queue_jobs',
    help: 'Jobs in the invocation queue by state (waiting, active, delayed, prioritized, waiting-children), sampled by each worker',
    labelNames: ['state'] as const,
    registers: [this.registry],
  });

  readonly queueOldestWaitingAge = new Gauge({
    name: 'svcnode_queue_oldest_waiting_age_seconds',
    help: 'How long the next job to be taken has been waiting (0 when none waits), sampled by each worker',
    registers: [this.registry],
  });

  readonly workerUp = new Gauge({
    name: 'svcnode_worker_up',
    help: '1 while this worker takes jobs (consuming and connected to Redis), else 0',
    registers: [this.registry],
  });

  readonly revocationChecks = new Counter({
    name: 'svcnode_revocation_checks_total',
    help: 'Revocation checks of server chains by result: ok, revoked, unknown (no current CRL or OCSP status)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly crlNextUpdate = new Gauge({
    name: 'svcnode_crl_next_update_timestamp_seconds',
    help: 'nextUpdate of every trust.crl CRL as a Unix timestamp',
    labelNames: ['profile', 'issuer', 'source'] as const,
    registers: [this.registry],
  });

  readonly workerRecreations = new Counter({
    name: 'svcnode_worker_recreated_total',
    help: 'BullMQ workers recreated by the watchdog because they stopped taking jobs',
    registers: [this.registry],
  });

  /** `nodeSeriesGraceMs`: how long a removed node's series stay after the last job that named it. */
  constructor(private readonly nodeSeriesGraceMs: number = NODE_SERIES_GRACE_MS) {
    collectDefaultMetrics({ register: this.registry, prefix: 'svcnode_' });
    // Gauges named like counters (`promtool check metrics` fails on them); the per-type
    // svcnode_nodejs_active_{handles,requests,resources} series carry the same numbers.
    for (const kind of ['handles', 'requests', 'resources']) this.registry.removeSingleMetric(`svcnode_nodejs_active_${kind}_total`);
  }

  /**
   * `/metrics`: every metric in Prometheus text format, one metric (and one slice of the per-node
   * histogram) at a time with the event loop let through in between, so a scrape does not hold
   * up calls and lock renewals (prom-client's `registry.metrics()` renders all in one piece).
   */
  async exposition(): Promise<string> {
    const parts: string[] = [];
    for (const metric of this.registry.getMetricsAsArray()) {
      parts.push(await this.registry.getSingleMetricAsString(metric.name));
      await yieldToLoop();
    }
    parts.push(await this.duration.text());
    return `${parts.join('\n\n')}\n`;
  }

  /** Expiry series published per profile, so a rotation or removal can delete them. */
  private readonly expirySeries = new Map<string, { profile: string; role: string; subject: string }[]>();

  /**
   * Publish notAfter of every certificate of a profile (client, chain, trust anchors); series of
   * certificates the profile no longer holds (rotated-away subjects) are deleted.
   */
  setCertificateExpiry(profile: LoadedProfile, now = new Date()): void {
    this.removeProfile(profile.name);
    const series: { profile: string; role: string; subject: string }[] = [];
    for (const [role, cert] of profileCertificates(profile)) {
      const labels = { profile: profile.name, role, subject: cert.subject.replace(/\n/g, ', ') };
      this.certificateExpiry.set(labels, new Date(cert.validTo).getTime() / 1000);
      series.push(labels);
    }
    this.expirySeries.set(profile.name, series);
    this.setCrlNextUpdate(profile);
    const counts = new Map<string, number>();
    for (const f of errorFindingsAt(profile, now)) counts.set(f.code, (counts.get(f.code) ?? 0) + 1);
    for (const [code, n] of counts) this.profileErrorFindings.set({ profile: profile.name, code }, n);
    this.findingSeries.set(profile.name, [...counts.keys()].map((code) => ({ profile: profile.name, code })));
  }

  private readonly findingSeries = new Map<string, { profile: string; code: string }[]>();

  /** Delete every expiry series of a profile (removed, or about to be republished). */
  removeProfile(name: string): void {
    for (const labels of this.expirySeries.get(name) ?? []) this.certificateExpiry.remove(labels);
    this.expirySeries.delete(name);
    for (const labels of this.crlSeries.get(name) ?? []) this.crlNextUpdate.remove(labels);
    this.crlSeries.delete(name);
    for (const labels of this.findingSeries.get(name) ?? []) this.profileErrorFindings.remove(labels);
    this.findingSeries.delete(name);
  }

  private readonly crlSeries = new Map<string, { profile: string; issuer: string; source: string }[]>();

  /** Publish nextUpdate of every CRL of a profile (CRLs without one are left out). */
  setCrlNextUpdate(profile: LoadedProfile): void {
    const series: { profile: string; issuer: string; source: string }[] = [];
    for (const crl of profile.trust.crls ?? []) {
      if (!crl.nextUpdate) continue;
      const labels = { profile: profile.name, issuer: crl.issuerName, source: crl.source };
      this.crlNextUpdate.set(labels, crl.nextUpdate.getTime() / 1000);
      series.push(labels);
    }
    this.crlSeries.set(profile.name, series);
  }

  /** Removed nodes (by id) and node files (`file\u0000NAME`) whose series are deleted when the timer fires. */
  private readonly retiring = new Map<string, NodeJS.Timeout>();

  /**
   * A node went out of use (its file removed, or now defining another id): its series are deleted
   * once `nodeSeriesGraceMs` has passed without a job naming it, so that scrapers read its last counts first.
   * A job for the removed id calls this again (its refusal is counted under the id), so the series
   * go once jobs stop naming it. Without this, every node id a worker ever loaded kept some 17
   * series for the life of the process, and a platform deploying nodes under new ids grew /metrics for good.
   */
  retireNode(node: string): void {
    this.retire(node, () => void this.removeNode(node));
  }

  /** A node id in use again (a file defines it): its series stay. */
  keepNode(node: string): void {
    this.keep(node);
  }

  /**
   * A node file was removed: its `svcnode_node_load_failures_total{file}` series goes after the
   * same grace as a node's (a fixed file keeps its count, as dashboards sum it over a day). Before,
   * every bad file name ever seen stayed in /metrics.
   */
  retireNodeFile(file: string): void {
    this.retire(`file\u0000${file}`, () => this.nodeLoadFailures.remove({ file }));
  }

  /** A node file of this name is back: its series stays. */
  keepNodeFile(file: string): void {
    this.keep(`file\u0000${file}`);
  }

  private retire(key: string, remove: () => void): void {
    clearTimeout(this.retiring.get(key));
    const timer = setTimeout(() => {
      this.retiring.delete(key);
      remove();
    }, this.nodeSeriesGraceMs);
    timer.unref();
    this.retiring.set(key, timer);
  }

  private keep(key: string): void {
    clearTimeout(this.retiring.get(key));
    this.retiring.delete(key);
  }

  /** Delete every series labelled with `node` (counts still pending are flushed first, then deleted too). */
  async removeNode(node: string): Promise<void> {
    for (const metric of [this.invocations, this.attempts, this.handshakes, this.connectionReplays, this.deferredJobs] as Counter<string>[]) {
      for (const { labels } of (await metric.get()).values) if (labels.node === node) metric.remove(labels as Record<string, string>);
    }
    this.duration.remove(node);
  }

  /** Count a revocation verdict reached after the handshake (soft mode, or a hard-mode pass). */
  observeRevocation(check: RevocationCheck): void {
    this.revocationChecks.inc({ result: check.result });
  }

  /** Count one attempt. */
  observeAttempt(result: Result): void {
    const outcome = result.failure?.category ?? 'ok';
    this.pendingAttempts.add(result.nodeId, outcome);
    this.duration.observe(result.nodeId, result.timings.totalMs / 1000);
    const tls = result.tls;
    // Hard-mode verdicts reached by OpenSSL in the handshake (the checker only sees passes).
    if (result.failure?.code === 'CERT_REVOKED') this.revocationChecks.inc({ result: 'revoked' });
    else if (result.failure?.code === 'server_cert_revocation_unknown') this.revocationChecks.inc({ result: 'unknown' });
    if (result.failure?.phase === 'tls') this.handshakes.inc({ node: result.nodeId, result: result.failure.category });
    else if (tls?.protocol && !tls.connectionReused) this.handshakes.inc({ node: result.nodeId, result: tls.sessionReused ? 'resumed' : 'ok' });
  }

  /** Count one finished invocation (after its retries). */
  observeInvocation(result: Result): void {
    this.pendingInvocations.add(result.nodeId, result.failure?.category ?? 'ok');
  }
}
