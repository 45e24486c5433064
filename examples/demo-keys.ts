/**
 * The demo's own corner of Redis: a random key prefix for its queue, failure records and every
 * other key, so a Redis given by REDIS_URL that workers already use shares no job and no record
 * with the demo, and the removal of exactly those keys when the demo ends.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { connectTarget, isCluster, parseRedisUrl, withTimeout } from '../src/queue/connection.js';

/** `svcnode-demo-<hex>`; on a Redis Cluster in braces, the hash tag that keeps the queue's keys in one slot. */
export function demoPrefix(redisUrl: string): string {
  const prefix = `svcnode-demo-${randomBytes(6).toString('hex')}`;
  return parseRedisUrl(redisUrl).kind === 'cluster' ? `{${prefix}}` : prefix;
}

/** SCAN's glob characters escaped, so the pattern matches the prefix literally. */
const literal = (text: string): string => text.replace(/[\\*?[\]]/g, '\\$&');

/** Delete every `PREFIX:*` key (the queue's and the failure store's) and nothing else; resolves with how many. */
export async function removeDemoKeys(redisUrl: string, prefix: string, timeoutMs = 10_000): Promise<number> {
  const connection = connectTarget(parseRedisUrl(redisUrl), 'producer');
  connection.on('error', () => undefined);
  const removeAll = async (): Promise<number> => {
    // A cluster knows its masters once connected.
    await connection.ping();
    const nodes: Redis[] = isCluster(connection) ? connection.nodes('master') : [connection];
    let removed = 0;
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', `${literal(prefix)}:*`, 'COUNT', 1000);
        cursor = next;
        // Keys of one prefix on a cluster share its hash tag, hence one slot: one UNLINK per batch is fine.
        if (keys.length > 0) removed += await node.unlink(...keys);
      } while (cursor !== '0');
    }
    return removed;
  };
  try {
    return await withTimeout(removeAll(), timeoutMs, () => new Error(`Redis did not answer within ${timeoutMs} ms`));
  } finally {
    connection.disconnect();
  }
}
