/**
 * One 'abort' listener per signal, fanning out to the calls in flight. A worker passes the same
 * long-lived signal to every call; adding and removing an EventTarget listener per call cost
 * more CPU than the rest of the call's bookkeeping (npm run bench profiles).
 */
const waiting = new WeakMap<AbortSignal, Set<() => void>>();

/** Run `fn` when `signal` aborts; returns the function that unregisters it. */
export function onAbort(signal: AbortSignal, fn: () => void): () => void {
  let set = waiting.get(signal);
  if (!set) {
    const fresh = new Set<() => void>();
    set = fresh;
    waiting.set(signal, fresh);
    signal.addEventListener(
      'abort',
      () => {
        waiting.delete(signal);
        for (const f of fresh) f();
      },
      { once: true },
    );
  }
  set.add(fn);
  return () => set.delete(fn);
}
