import { setTimeout as sleep } from 'node:timers/promises';

/** Wait `ms`, or less when `signal` aborts (resolves either way; no listener is left behind). */
export function sleepOrAbort(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return sleep(ms, undefined, signal ? { signal } : {}).catch(() => undefined);
}
