import { describe, expect, it } from 'vitest';
import { RepeatGate } from '../../src/observability/repeat-gate.js';

describe('RepeatGate', () => {
  it('says a key once per window, then how many were held back meanwhile', () => {
    const gate = new RepeatGate(1_000);
    expect(gate.pass('a', 0)).toBe(0);
    expect(gate.pass('a', 10)).toBeUndefined();
    expect(gate.pass('a', 999)).toBeUndefined();
    expect(gate.pass('b', 999)).toBe(0);
    expect(gate.pass('a', 1_000)).toBe(2);
    expect(gate.pass('a', 1_500)).toBeUndefined();
    expect(gate.pass('a', 2_000)).toBe(1);
  });

  it('remembers at most maxKeys keys, forgetting the oldest', () => {
    const gate = new RepeatGate(1_000, 2);
    gate.pass('a', 0);
    gate.pass('b', 0);
    gate.pass('c', 0);
    // "a" was forgotten: said again at once; "c" is still remembered.
    expect(gate.pass('a', 1)).toBe(0);
    expect(gate.pass('c', 1)).toBeUndefined();
  });
});
