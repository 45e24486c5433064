import { onAbort } from './abort-fanout.js';

/** The reason an attempt's signal aborts with once `timeouts.totalMs` has passed for the whole attempt. */
export class AttemptDeadline extends Error {
  constructor(readonly totalMs: number) {
    super(`timeouts.totalMs (${totalMs} ms) passed for the attempt`);
    this.name = 'AttemptDeadline';
  }
}

/**
 * The signal of one attempt of a node that authenticates first: it aborts when `external` does
 * (shutdown, cancellation: its reason is kept) or once `totalMs` has passed since the attempt
 * began (reason: AttemptDeadline). Each exchange of the attempt (discovery, token or login, the
 * call, a re-authentication) has its own `totalMs` timer as well; this one bounds their sum, so
 * that `timeouts.totalMs` is the budget of the attempt as documented. A login or token request
 * that concurrent calls share runs under the budget of the call that started it. `done()` clears
 * the timer.
 */
export function attemptSignal(totalMs: number, external: AbortSignal | undefined): { signal: AbortSignal; done(): void } {
  const controller = new AbortController();
  if (external?.aborted) {
    controller.abort(external.reason);
    return { signal: controller.signal, done: () => undefined };
  }
  const timer = setTimeout(() => controller.abort(new AttemptDeadline(totalMs)), totalMs);
  timer.unref();
  const unbind = external ? onAbort(external, () => controller.abort(external.reason)) : undefined;
  return {
    signal: controller.signal,
    done: () => {
      clearTimeout(timer);
      unbind?.();
    },
  };
}
