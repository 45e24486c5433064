import { describe, expect, it } from 'vitest';
import { onAbort } from '../../src/invoke/abort-fanout.js';

describe('abort fan-out', () => {
  it('runs every registered call once when the shared signal aborts, not the unregistered ones', () => {
    const controller = new AbortController();
    const fired: string[] = [];
    const unbindA = onAbort(controller.signal, () => fired.push('a'));
    onAbort(controller.signal, () => fired.push('b'));
    unbindA();
    onAbort(controller.signal, () => fired.push('c'));
    controller.abort();
    controller.abort();
    // In no particular order: c took the slot a left.
    expect(fired.sort()).toEqual(['b', 'c']);
  });

  it('signals are independent', () => {
    const one = new AbortController();
    const two = new AbortController();
    const fired: string[] = [];
    onAbort(one.signal, () => fired.push('one'));
    onAbort(two.signal, () => fired.push('two'));
    two.abort();
    expect(fired).toEqual(['two']);
  });
});
