import { isCluster, type RedisConnection } from './connection.js';

/** Replies a Cluster connection retries by itself: a migrating slot, or a cluster without a master for a slot. */
export type ClusterRetry = 'TRYAGAIN' | 'CLUSTERDOWN';

/**
 * Calls `listener` with each TRYAGAIN or CLUSTERDOWN a Cluster connection meets. While the queue's
 * slot migrates, or its master has failed and no replica is promoted yet, ioredis retries every
 * command by itself (up to maxRedirections times) without a word, so a queue that stands still
 * would look healthy, and a failover would leave no trace in the log.
 */
export function onClusterRetry(connection: RedisConnection, listener: (kind: ClusterRetry, error: Error) => void): void {
  if (!isCluster(connection)) return;
  const handle = connection.handleError.bind(connection);
  connection.handleError = (error, ttl, handlers) => {
    const kind = /^(TRYAGAIN|CLUSTERDOWN)\b/.exec(error.message)?.[1] as ClusterRetry | undefined;
    if (kind) listener(kind, error);
    handle(error, ttl, handlers);
  };
}
