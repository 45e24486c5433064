import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../src/errors.js';
import { MAX_CONTEXT_DEPTH, validateDocument } from '../../src/definitions/validator.js';

/** `{"a": {"a": … "x" …}}` nesting `levels` objects deep (the context itself is level 1). */
function nested(levels: number): Record<string, unknown> {
  let value: unknown = 'x';
  for (let i = 1; i < levels; i++) value = { a: value };
  return value as Record<string, unknown>;
}

describe('invocation context depth', () => {
  it(`accepts ${MAX_CONTEXT_DEPTH} levels and refuses one more, naming where`, () => {
    expect(() => validateDocument('invocation', { nodeId: 'n', context: nested(MAX_CONTEXT_DEPTH) }, 'job 1 data')).not.toThrow();
    const refuse = (): unknown => validateDocument('invocation', { nodeId: 'n', context: nested(MAX_CONTEXT_DEPTH + 2) }, 'job 1 data');
    expect(refuse).toThrow(InvalidInputError);
    expect(refuse).toThrow(/job 1 data: the context nests deeper than 64 levels \(at \/context(\/a){64}\)/);
  });

  it('a hostile depth (JSON.stringify would overflow the stack) is refused as input, without a stack overflow of its own', () => {
    const deep = JSON.parse(`{"list": ${'['.repeat(200_000)}${']'.repeat(200_000)}}`) as Record<string, unknown>;
    expect(() => JSON.stringify(deep)).toThrow(RangeError);
    expect(() => validateDocument('invocation', { nodeId: 'n', context: deep }, 'invocation')).toThrow(InvalidInputError);
  });

  it('wide contexts are fine: depth, not size, is limited', () => {
    const wide = Object.fromEntries(Array.from({ length: 5_000 }, (_, i) => [`k${i}`, { v: [i, { w: String(i) }] }]));
    expect(() => validateDocument('invocation', { nodeId: 'n', context: wide }, 'invocation')).not.toThrow();
  });
});
