import { isCluster, type RedisConnection } from './connection.js';

/**
 * Calls `listener` with each TRYAGAIN a Cluster connection meets. While the queue's slot migrates,
 * ioredis retries every multi-key command (all of BullMQ's scripts) by itself for up to
 * maxRedirections × retryDelayOnTryAgain without a word, so a queue that stands still would look healthy.
 */
export function onTryAgain(connection: RedisConnection, listener: (error: Error) => void): void {
  if (!isCluster(connection)) return;
  const handle = connection.handleError.bind(connection);
  connection.handleError = (error, ttl, handlers) => {
    if (/^TRYAGAIN\b/.test(error.message)) listener(error);
    handle(error, ttl, handlers);
  };
}
