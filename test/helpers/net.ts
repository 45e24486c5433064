import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** Loopback only: test servers must never be reachable from outside the machine. */
export const LOOPBACK = '127.0.0.1';

/**
 * A TCP port that was free a moment ago (bind port 0, read it, release it).
 * Prefer `listen(0)` on the real server; use this only for processes that need the port up front.
 */
export async function freePort(host: string = LOOPBACK): Promise<number> {
  const server = net.createServer();
  await listen(server, 0, host);
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Polls `predicate` until it returns a truthy value, which is returned; throws after `timeoutMs`. */
export async function waitFor<T>(
  predicate: () => T | Promise<T>,
  timeoutMs = 5_000,
  intervalMs = 20,
  what = 'condition',
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await predicate();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      throw new Error(`waitFor: ${what} not met within ${timeoutMs} ms`, { cause: lastError });
    }
    await sleep(intervalMs);
  }
}

/** `server.listen` as a promise; rejects on EADDRINUSE and similar instead of emitting 'error'. */
export function listen(server: net.Server, port: number, host: string = LOOPBACK): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

/**
 * Remembers every raw socket a server accepts so `close()` can destroy them: `server.close()`
 * alone waits forever for half-open handshakes and tunnels, which leaves open handles.
 */
export function trackSockets(server: net.Server): { sockets: Set<net.Socket>; close(): Promise<void> } {
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  return {
    sockets,
    close: () => closeServer(server, sockets),
  };
}

/** Stops listening, destroys the given sockets and resolves once the server has fully closed. */
export function closeServer(server: net.Server, sockets: Iterable<net.Socket> = []): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!server.listening) {
      for (const s of sockets) s.destroy();
      resolve();
      return;
    }
    server.close((err) => (err ? reject(err) : resolve()));
    for (const s of sockets) s.destroy();
  });
}
