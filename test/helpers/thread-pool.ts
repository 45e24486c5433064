import { pbkdf2 } from 'node:crypto';

/**
 * Every thread of this process's libuv pool busy for a while (about a second each here), as reads
 * stuck on a hung mount leave them: file reads queued meanwhile wait. Settles when all are free.
 */
export function holdThreadPool(): Promise<void> {
  const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
  return Promise.all(Array.from({ length: threads }, () => new Promise<void>((resolve) => pbkdf2('p', 's', 1_000_000, 64, 'sha512', () => resolve())))).then(() => undefined);
}
