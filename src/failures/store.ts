import type { Cluster, Redis } from 'ioredis';
import type { ChainEntry } from '../tls/probe.js';
import { CATEGORY_NAMES } from './categories.js';
import type { Failure } from './failure.js';

/** What the store reads of an attempt's Result (a Result fits; declared here so failures/ never imports invoke/). */
export interface AttemptOutcome {
  nodeId: string;
  requestId?: string;
  attempts: number;
  failure: Failure | null;
  tls: { protocol: string | null; sessionReused: boolean; connectionReused: boolean; serverChain: ChainEntry[] } | null;
}

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
  /** The stored record was not a complete JSON failure record; the fields shown are what could be read. */
  broken?: true;
}

export type Counts = Record<string, number>;

/** A key of a node's records that holds another type than svcnode writes (WRONGTYPE): what it cannot show, and why. */
export interface BrokenKey {
  key: string;
  code: 'SVCNODE_BROKEN_RECORD';
  message: string;
  hint: string;
}

export interface NodeFailures {
  nodeId: string;
  counts: Counts;
  recent: FailureRecord[];
  /** Set when the node's counts or recent-failures key holds another type: that part reads as empty. */
  broken?: BrokenKey[];
}

export interface FailureSummary {
  nodes: { nodeId: string; counts: Counts; lastFailure: FailureRecord | null; broken?: BrokenKey[] }[];
}

/** The text of a record stream entry's `record` field. */
function recordField(fields: string[]): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === 'record') return fields[i + 1];
  return undefined;
}

function text(value: unknown, fallback: string): string {
  return typeof value === 'string' ? value : fallback;
}

/**
 * One stored record, read defensively: Redis is shared, so a record that is not JSON or lacks
 * fields becomes a `broken` record (category "broken_record") instead of failing the listing.
 */
export function readRecord(id: string, fields: string[]): FailureRecord {
  const raw = recordField(fields);
  let data: unknown;
  try {
    data = raw === undefined ? undefined : JSON.parse(raw);
  } catch {
    data = undefined;
  }
  const at = new Date(Number(id.split('-')[0]) || 0).toISOString();
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    return { at, category: 'broken_record', code: 'SVCNODE_BROKEN_RECORD', message: `stream entry ${id} is not a JSON failure record`, hint: 'written by something other than svcnode; it can be deleted', attempt: 0, serverChain: [], broken: true };
  }
  const r = data as Record<string, unknown>;
  const complete = typeof r.category === 'string' && typeof r.message === 'string';
  const chain = Array.isArray(r.serverChain) ? (r.serverChain as unknown[]).filter((e): e is ChainEntry => e !== null && typeof e === 'object' && typeof (e as ChainEntry).subject === 'string') : [];
  return {
    at: text(r.at, at),
    category: text(r.category, 'broken_record'),
    code: text(r.code, 'SVCNODE_BROKEN_RECORD'),
    message: text(r.message, `stream entry ${id} lacks fields of a failure record`),
    hint: text(r.hint, ''),
    attempt: typeof r.attempt === 'number' ? r.attempt : 0,
    ...(typeof r.requestId === 'string' ? { requestId: r.requestId } : {}),
    serverChain: chain.map((e) => ({ subject: e.subject, issuer: text(e.issuer, ''), validFrom: text(e.validFrom, ''), validTo: text(e.validTo, ''), fingerprint256: text(e.fingerprint256, '') })),
    ...(complete ? {} : { broken: true }),
  };
}

/**
 * A key of another type (WRONGTYPE) reads as `fallback` and is noted in `broken`, named with
 * what svcnode keeps there; other errors (Redis down) still fail.
 */
function ifWrongType<T>(fallback: T, key: string, holds: string, broken: BrokenKey[]): (error: unknown) => T {
  return (error) => {
    if (!(error instanceof Error) || !error.message.startsWith('WRONGTYPE')) throw error;
    broken.push({ key, code: 'SVCNODE_BROKEN_RECORD', message: `Redis key "${key}" holds another type than the ${holds} svcnode writes there, so it cannot be shown`, hint: 'written by something other than svcnode: delete the key; the worker recreates it with the next invocation of this node' });
    return fallback;
  };
}

/** Counters kept beside the failure categories, as Envoy keeps ssl.handshake beside ssl.fail_*. */
export const SUCCESS_COUNTERS = ['handshakes_ok', 'session_reused'] as const;

export interface FailureStoreOptions {
  /** Key prefix; use a hash tag such as `{svcnode}` on Redis Cluster. @defaultValue 'svcnode' */
  prefix?: string;
  /** Failures kept per node. @defaultValue 50 */
  recentMax?: number;
  /** A node's records go this long after their last write (a node removed, or renamed, leaves none behind for good). @defaultValue FAILURE_RETENTION_SECONDS (30 days) */
  retentionSeconds?: number;
}

/** How long a node's counts and failures stay after the last attempt that wrote to them: 30 days. */
export const FAILURE_RETENTION_SECONDS = 30 * 86_400;

/**
 * Per-node handshake and failure records in Redis: a hash of counts per category (per attempt)
 * and a capped stream of the latest failures.
 */
export class FailureStore {
  private readonly prefix: string;
  private readonly recentMax: number;
  private readonly retentionSeconds: number;

  constructor(
    private readonly redis: Redis | Cluster,
    options: FailureStoreOptions = {},
  ) {
    this.prefix = options.prefix ?? 'svcnode';
    this.recentMax = options.recentMax ?? 50;
    this.retentionSeconds = options.retentionSeconds ?? FAILURE_RETENTION_SECONDS;
  }

  private key(...parts: string[]): string {
    return [this.prefix, 'failures', ...parts].join(':');
  }

  /**
   * Record one attempt's Result: its failure, or a successful handshake. A success on a reused
   * keep-alive connection has nothing to count: it costs no Redis round trip (that MULTI was ~10%
   * of a worker's CPU per invocation in `npm run bench`) and no promise either (undefined, so the
   * caller has nothing to await), and it does not list the node (`svcnode failures` listed every
   * node id that ever ran, most with nothing to show).
   */
  record(result: AttemptOutcome): Promise<void> | undefined {
    const tlsFailed = result.failure?.phase === 'tls';
    const tls = result.tls;
    const handshake = Boolean(tls?.protocol && !tls.connectionReused && !tlsFailed);
    if (!handshake && !result.failure) return undefined;
    return this.write(result, handshake);
  }

  private async write(result: AttemptOutcome, handshake: boolean): Promise<void> {
    const tls = result.tls;
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
      const recent = this.key('node', result.nodeId, 'recent');
      multi.hincrby(counts, f.category, 1);
      multi.xadd(recent, 'MAXLEN', '~', String(this.recentMax), '*', 'record', JSON.stringify(entry));
      multi.expire(recent, this.retentionSeconds);
    }
    multi.expire(counts, this.retentionSeconds);
    multi.sadd(this.key('nodes'), result.nodeId);
    await multi.exec();
  }

  private async counts(nodeId: string): Promise<Counts> {
    const raw = await this.redis.hgetall(this.key('node', nodeId, 'counts'));
    const counts: Counts = {};
    for (const name of [...CATEGORY_NAMES, ...SUCCESS_COUNTERS]) {
      const n = Number(raw[name]);
      if (raw[name] !== undefined && Number.isFinite(n)) counts[name] = n;
    }
    return counts;
  }

  private async recent(nodeId: string, count: number): Promise<FailureRecord[]> {
    const entries = await this.redis.xrevrange(this.key('node', nodeId, 'recent'), '+', '-', 'COUNT', count);
    return entries.map(([id, fields]) => readRecord(id, fields));
  }

  /** Counts and up to `limit` recent failures of one node (newest first); keys of another type are listed in `broken`. */
  private async read(nodeId: string, limit: number): Promise<{ counts: Counts; recent: FailureRecord[]; broken?: BrokenKey[] }> {
    const broken: BrokenKey[] = [];
    const [counts, recent] = await Promise.all([
      this.counts(nodeId).catch(ifWrongType<Counts>({}, this.key('node', nodeId, 'counts'), 'hash of counts', broken)),
      this.recent(nodeId, limit).catch(ifWrongType<FailureRecord[]>([], this.key('node', nodeId, 'recent'), 'stream of failure records', broken)),
    ]);
    return { counts, recent, ...(broken.length > 0 ? { broken } : {}) };
  }

  /** Counts and recent failures of one node, newest first. */
  async node(nodeId: string, limit = this.recentMax): Promise<NodeFailures> {
    return { nodeId, ...(await this.read(nodeId, limit)) };
  }

  /**
   * Every node with records: counts and last failure, sorted by node id. A node whose records
   * expired (FailureStoreOptions.retentionSeconds) is left out, and taken out of the index.
   */
  async summary(): Promise<FailureSummary> {
    const ids = (await this.redis.smembers(this.key('nodes'))).sort();
    const read = await Promise.all(
      ids.map(async (nodeId) => {
        const { recent, ...rest } = await this.read(nodeId, 1);
        return { nodeId, ...rest, lastFailure: recent[0] ?? null };
      }),
    );
    const nodes = read.filter((n) => Object.keys(n.counts).length > 0 || n.lastFailure !== null || n.broken !== undefined);
    const gone = read.filter((n) => !nodes.includes(n)).map((n) => n.nodeId);
    // Best effort: a reader without write rights still gets the listing.
    if (gone.length > 0) await this.redis.srem(this.key('nodes'), ...gone).catch(() => undefined);
    return { nodes };
  }
}
