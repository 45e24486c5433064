import type { Writable } from 'node:stream';
import type { Redis } from 'ioredis';
import { isCluster, type RedisConnection } from './connection.js';

const connections = new WeakSet<Redis>();
const streams = new WeakSet<Writable>();

/**
 * Sends the commands given to a connection during one turn of the event loop in one write.
 *
 * A busy worker finishes many jobs per turn (one poll hands it many backend answers), and each
 * finished job is one BullMQ script call. ioredis writes each command to the socket on its own:
 * one system call per command, each of which also wakes Redis to read it. Corked until the
 * turn's check phase, they leave in one write and Redis reads them in one go: `npm run bench`
 * measured 8% less worker CPU and 17% less Redis CPU per job. A command waits at most for
 * the callbacks already due in the same turn.
 *
 * Applies to a single node or Sentinel connection, and to every node of a Cluster connection.
 */
export function coalesceWrites(connection: RedisConnection): void {
  if (isCluster(connection)) {
    for (const node of connection.nodes('all')) coalesceWrites(node);
    connection.on('+node', (node: Redis) => coalesceWrites(node));
    return;
  }
  if (connections.has(connection)) return;
  connections.add(connection);
  const attach = (): void => {
    // ioredis sets `stream` when it opens a socket, and writes commands with `stream.write`.
    const stream = (connection as unknown as { stream?: Writable }).stream;
    if (stream && !streams.has(stream)) corkPerTurn(stream);
  };
  connection.on('connect', attach);
  attach();
}

function corkPerTurn(stream: Writable): void {
  streams.add(stream);
  const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
  let corked = false;
  const flush = (): void => {
    corked = false;
    // A no-op once the stream has ended (end() uncorks) or been destroyed.
    stream.uncork();
  };
  stream.write = ((...args: unknown[]): boolean => {
    if (!corked && !stream.destroyed) {
      corked = true;
      stream.cork();
      setImmediate(flush);
    }
    return write(...args);
  }) as Writable['write'];
}
