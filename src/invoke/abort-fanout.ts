import { SlotList } from '../slot-list.js';

/**
 * One 'abort' listener per signal, fanning out to the calls in flight. A worker passes the same
 * long-lived signal to every call; adding and removing an EventTarget listener per call cost
 * more CPU than the rest of the call's bookkeeping (npm run bench profiles). The calls wait in a
 * SlotList, not a Set: a Set's dropped tables got every call promoted to the old generation.
 */
const waiting = new WeakMap<AbortSignal, SlotList<() => void>>();

/** Run `fn` when `signal` aborts; returns the function that unregisters it. */
export function onAbort(signal: AbortSignal, fn: () => void): () => void {
  let calls = waiting.get(signal);
  if (!calls) {
    const fresh = new SlotList<() => void>();
    calls = fresh;
    waiting.set(signal, fresh);
    signal.addEventListener(
      'abort',
      () => {
        waiting.delete(signal);
        for (const f of [...fresh.values()]) f();
      },
      { once: true },
    );
  }
  const list = calls;
  const slot = list.add(fn);
  return () => {
    list.remove(slot, fn);
  };
}
