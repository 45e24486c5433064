import type { Cluster, Redis } from 'ioredis';
import type { Result } from '../invoke/result.js';
import type { ChainEntry } from '../tls/probe.js';
import { CATEGORY_NAMES } from './categories.js';

/** One recorded failed attempt. Holds no request body, header, URL query or key material. */
export interface FailureRecord {
  at: string;
  category: string;
  code: string;
  message: string;
  hint: string;
  attempt: number;
  requestId?: string;
  serverChain: ChainEntry[];
}

export type Counts = Record<string, number>;

export interface NodeFailures {
  nodeId: string;
  counts: Counts;
  recent: FailureRecord[];
}

export interface FailureSummary {
  nodes: { nodeId: string; counts: Counts; lastFailure: FailureRecord | null }[];
}

/** Counters kept beside the failure categories, as Envoy keeps ssl.handshake beside ssl.fail_*. */
export const SUCCESS_COUNTERS = ['handshakes_ok', 'session_reused'] as const;

export interface FailureStoreOptions {
  /** Key prefix; use a hash tag such as `{svcnode}` on Redis Cluster. @defaultValue 'svcnode' */
  prefix?: string;
  /** Failures kept per node. @defaultValue 50 */
  recentMax?: number;
}

/**
 * Per-node handshake and failure records in Redis: a hash of counts per category (per attempt)
 * and a capped stream of the latest failures.
 */
export class FailureStore {
  private readonly prefix: string;
  private readonly recentMax: number;
  /** Node ids this store has added to the index set. */
  private readonly indexed = new Set<string>();

  constructor(
    private readonly redis: Redis | Cluster,
    options: FailureStoreOptions = {},
  ) {
    this.prefix = options.prefix ?? 'svcnode';
    this.recentMax = options.recentMax ?? 50;
  }

  private key(...parts: string[]): string {
    return [this.prefix, 'failures', ...parts].join(':');
  }

  /**
   * Record one attempt's Result: its failure, or a successful handshake. A success on a reused
   * keep-alive connection has nothing to count, so once the node is indexed it costs no Redis
   * round trip (that MULTI was ~10% of a worker's CPU per invocation in `npm run bench`).
   */
  async record(result: Result): Promise<void> {
    const tlsFailed = result.failure?.phase === 'tls';
    const tls = result.tls;
    const handshake = Boolean(tls?.protocol && !tls.connectionReused && !tlsFailed);
    if (!handshake && !result.failure && this.indexed.has(result.nodeId)) return;
    const multi = this.redis.multi();
    const counts = this.key('node', result.nodeId, 'counts');
    if (handshake) {
      multi.hincrby(counts, 'handshakes_ok', 1);
      if (tls?.sessionReused) multi.hincrby(counts, 'session_reused', 1);
    }
    if (result.failure) {
      const f = result.failure;
      const entry: FailureRecord = {
        at: new Date().toISOString(),
        category: f.category,
        code: f.code,
        message: f.message,
        hint: f.hint,
        attempt: result.attempts,
        ...(result.requestId ? { requestId: result.requestId } : {}),
        serverChain: tls?.serverChain ?? [],
      };
      multi.hincrby(counts, f.category, 1);
      multi.xadd(this.key('node', result.nodeId, 'recent'), 'MAXLEN', '~', String(this.recentMax), '*', 'record', JSON.stringify(entry));
    }
    multi.sadd(this.key('nodes'), result.nodeId);
    await multi.exec();
    this.indexed.add(result.nodeId);
  }

  private async counts(nodeId: string): Promise<Counts> {
    const raw = await this.redis.hgetall(this.key('node', nodeId, 'counts'));
    const counts: Counts = {};
    for (const name of [...CATEGORY_NAMES, ...SUCCESS_COUNTERS]) if (raw[name] !== undefined) counts[name] = Number(raw[name]);
    return counts;
  }

  private async recent(nodeId: string, count: number): Promise<FailureRecord[]> {
    const entries = await this.redis.xrevrange(this.key('node', nodeId, 'recent'), '+', '-', 'COUNT', count);
    return entries.map(([, fields]) => JSON.parse(fields[1] ?? '{}') as FailureRecord);
  }

  /** Counts and recent failures of one node, newest first. */
  async node(nodeId: string, limit = this.recentMax): Promise<NodeFailures> {
    const [counts, recent] = await Promise.all([this.counts(nodeId), this.recent(nodeId, limit)]);
    return { nodeId, counts, recent };
  }

  /** Every node with records: counts and last failure, sorted by node id. */
  async summary(): Promise<FailureSummary> {
    const ids = (await this.redis.smembers(this.key('nodes'))).sort();
    const nodes = await Promise.all(
      ids.map(async (nodeId) => {
        const [counts, last] = await Promise.all([this.counts(nodeId), this.recent(nodeId, 1)]);
        return { nodeId, counts, lastFailure: last[0] ?? null };
      }),
    );
    return { nodes };
  }
}
