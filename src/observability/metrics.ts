import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Result } from '../invoke/result.js';
import { profileCertificates } from '../pki/certificates.js';
import type { LoadedProfile } from '../pki/types.js';

/** Prometheus metrics of a worker process. */
export class Metrics {
  readonly registry = new Registry();

  readonly invocations = new Counter({
    name: 'svcnode_invocations_total',
    help: 'Finished invocations by node and outcome (ok or failure category)',
    labelNames: ['node', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly attempts = new Counter({
    name: 'svcnode_attempts_total',
    help: 'Call attempts by node and outcome, retries included',
    labelNames: ['node', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly handshakes = new Counter({
    name: 'svcnode_handshakes_total',
    help: 'New TLS connections by node and result (ok, resumed, or the failure category)',
    labelNames: ['node', 'result'] as const,
    registers: [this.registry],
  });

  readonly duration = new Histogram({
    name: 'svcnode_call_duration_seconds',
    help: 'Duration of one call attempt',
    labelNames: ['node'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  readonly certificateExpiry = new Gauge({
    name: 'svcnode_certificate_expiry_timestamp_seconds',
    help: 'notAfter of every loaded certificate (client, chain, trust) as a Unix timestamp',
    labelNames: ['profile', 'role', 'subject'] as const,
    registers: [this.registry],
  });

  readonly profileLoadFailures = new Counter({
    name: 'svcnode_profile_load_failures_total',
    help: 'Profiles that failed to load or reload',
    labelNames: ['profile'] as const,
    registers: [this.registry],
  });

  readonly workerRecreations = new Counter({
    name: 'svcnode_worker_recreated_total',
    help: 'BullMQ workers recreated by the watchdog because they stopped taking jobs',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'svcnode_' });
  }

  /** Publish notAfter of every certificate of a profile (client, chain, trust anchors). */
  setCertificateExpiry(profile: LoadedProfile): void {
    for (const [role, cert] of profileCertificates(profile)) {
      this.certificateExpiry.set({ profile: profile.name, role, subject: cert.subject.replace(/\n/g, ', ') }, new Date(cert.validTo).getTime() / 1000);
    }
  }

  /** Count one attempt. */
  observeAttempt(result: Result): void {
    const outcome = result.failure?.category ?? 'ok';
    this.attempts.inc({ node: result.nodeId, outcome });
    this.duration.observe({ node: result.nodeId }, result.timings.totalMs / 1000);
    const tls = result.tls;
    if (result.failure?.phase === 'tls') this.handshakes.inc({ node: result.nodeId, result: result.failure.category });
    else if (tls?.protocol && !tls.connectionReused) this.handshakes.inc({ node: result.nodeId, result: tls.sessionReused ? 'resumed' : 'ok' });
  }

  /** Count one finished invocation (after its retries). */
  observeInvocation(result: Result): void {
    this.invocations.inc({ node: result.nodeId, outcome: result.failure?.category ?? 'ok' });
  }
}
