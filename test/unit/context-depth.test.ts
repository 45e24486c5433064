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

describe('invocation context numbers', () => {
  const refusal = (context: unknown): InvalidInputError => {
    try {
      validateDocument('invocation', { nodeId: 'n', context }, 'job 7 data');
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidInputError);
      return error as InvalidInputError;
    }
    return expect.fail(`${JSON.stringify(context)} was accepted`);
  };

  it('refuses an integer beyond 2^53 or a number that is not finite, naming its JSON pointer, with the same code as the depth refusal', () => {
    const cases: [string, string][] = [
      ['{"accountId": 9007199254740993}', '/context/accountId'],
      ['{"accountId": 9007199254740992}', '/context/accountId'],
      ['{"a": {"b~c/d": [0, -9007199254740993]}}', '/context/a/b~0c~1d/1'],
      ['{"amount": 12345678901234567891}', '/context/amount'],
      ['{"amount": 1e400}', '/context/amount'],
      ['{"amount": -1e400}', '/context/amount'],
      ['{"amount": 1e300}', '/context/amount'],
    ];
    for (const [json, pointer] of cases) {
      const error = refusal(JSON.parse(json));
      expect(error).toMatchObject({ code: 'SVCNODE_INVALID_DEFINITION', field: pointer, hint: 'send it as a string (JSON numbers beyond 2^53 lose digits)' });
      expect(error.message).toContain(`job 7 data: the context value at ${pointer} `);
    }
  });

  it('keeps every number JSON carries exactly: safe integers, 2^53 - 1, fractions', () => {
    const context = JSON.parse('{"a": 9007199254740991, "b": -9007199254740991, "c": 1.5, "d": 0.1, "e": -0, "f": 1e-300, "g": [42, {"h": 3.141592653589793}], "s": "9007199254740993"}') as unknown;
    expect(() => validateDocument('invocation', { nodeId: 'n', context }, 'job 7 data')).not.toThrow();
  });
});
