import type { ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnTracked } from './proc.js';

/** A throwaway redis-server on `port` in `dir` (no persistence: appendonly no, no save points). */
export async function startRedis(port: number, dir: string): Promise<{ url: string; child: ChildProcess; admin: Redis }> {
  const child = spawnTracked('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--maxmemory-policy', 'noeviction'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const failed = new Promise<never>((_, reject) => {
    child.once('error', () => reject(new Error('redis-server not found: apt-get install -y redis-server')));
    child.once('exit', (code) => reject(new Error(`redis-server exited with code ${code}`)));
  });
  failed.catch(() => undefined);
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    const admin = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    admin.on('error', () => undefined);
    try {
      await Promise.race([admin.connect(), failed]);
      await admin.ping();
      return { url, child, admin };
    } catch (error) {
      admin.disconnect();
      if (child.exitCode !== null || (error as Error).message.startsWith('redis-server')) throw error;
      await sleep(50);
    }
  }
  throw new Error('redis-server did not start within 5 s');
}
