import type { Logger } from 'pino';
import { StartAbortedError, startWorker, type WorkerOptions } from '../src/queue/worker.js';

/**
 * Run a worker until SIGTERM or SIGINT: stop taking jobs, let in-flight ones finish within the
 * grace period, release Redis and sockets, resolve with the exit code (0). Jobs still running
 * when the grace period ends are left to BullMQ's stall check, which hands them to a live worker.
 */
export async function runWorkerProcess(options: WorkerOptions & { shutdownGraceMs?: number; logger: Logger }): Promise<number> {
  // Listen before starting, so a signal during start-up (e.g. waiting for Redis) still stops cleanly.
  const abort = new AbortController();
  const stop = new Promise<NodeJS.Signals>((resolve) => {
    const on = (s: NodeJS.Signals): void => {
      abort.abort();
      resolve(s);
    };
    process.once('SIGTERM', on);
    process.once('SIGINT', on);
  });
  let worker;
  try {
    worker = await startWorker({ ...options, signal: abort.signal });
  } catch (error) {
    if (!(error instanceof StartAbortedError)) throw error;
    options.logger.info({ signal: await stop }, 'stopped before Redis could be reached; no job was taken');
    return 0;
  }
  const signal = await stop;
  options.logger.info({ signal }, 'shutting down: no new jobs, finishing in-flight ones');
  const { drained } = await worker.close(options.shutdownGraceMs);
  options.logger.info({ drained }, drained ? 'shutdown complete' : 'grace period over: unfinished jobs will be picked up by another worker');
  return 0;
}
