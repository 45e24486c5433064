import type { Logger } from 'pino';
import { startWorker, type WorkerOptions } from '../src/queue/worker.js';

/**
 * Run a worker until SIGTERM or SIGINT: stop taking jobs, let in-flight ones finish within the
 * grace period, release Redis and sockets, resolve with the exit code (0). Jobs still running
 * when the grace period ends are left to BullMQ's stall check, which hands them to a live worker.
 */
export async function runWorkerProcess(options: WorkerOptions & { shutdownGraceMs?: number; logger: Logger }): Promise<number> {
  // Listen before starting, so a signal during start-up still shuts down gracefully.
  const stop = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  const worker = await startWorker(options);
  const signal = await stop;
  options.logger.info({ signal }, 'shutting down: no new jobs, finishing in-flight ones');
  const { drained } = await worker.close(options.shutdownGraceMs);
  options.logger.info({ drained }, drained ? 'shutdown complete' : 'grace period over: unfinished jobs will be picked up by another worker');
  return 0;
}
