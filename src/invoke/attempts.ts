import { setTimeout as sleep } from 'node:timers/promises';
import type { NodeDefinition } from '../definitions/types.js';
import { invoke, type InvokeDeps, type InvokeOptions } from './execute.js';
import type { Result } from './result.js';
import { retryDelay, settledResult } from './retry.js';

/** Run attempts in process until the retry policy says the Result is final (dry-run --retry). */
export async function invokeWithRetries(node: NodeDefinition, context: Record<string, unknown>, deps: InvokeDeps, options: InvokeOptions = {}): Promise<Result> {
  for (let attempt = 1; ; attempt++) {
    const result = await invoke(node, context, deps, { ...options, attempt });
    const delay = retryDelay(result, node, attempt);
    if (delay === undefined || options.signal?.aborted) return settledResult(result, node);
    await sleep(delay, undefined, options.signal ? { signal: options.signal } : undefined).catch(() => undefined);
  }
}
