/**
 * Schema errors name what the operator meant: an alternative of a `oneOf` that plainly is another
 * form (it finds unknown properties where another finds none) is not listed, and the passphrase
 * says it is never written inline. The shipped schemas, compiled as the product compiles them.
 */
import { describe, expect, it } from 'vitest';
import type { InvalidInputError } from '../../src/errors.js';
import { validateDocument } from '../../src/definitions/validator.js';

function lines(doc: unknown): string[] {
  try {
    validateDocument('profile', doc, 'bank.json');
  } catch (error) {
    return (error as InvalidInputError).message.split('\n').slice(1).map((l) => l.trim());
  }
  throw new Error('the document was valid');
}

const trust = { ca: ['root.pem'] };

describe('profile schema errors', () => {
  it('an inline passphrase beside certificate and key: one message, about the passphrase, without the secret', () => {
    const got = lines({ client: { certificate: 'c.pem', key: 'k.pem', passphrase: 'S3cretPass!' }, trust });
    expect(got).toEqual([
      '/client/passphrase: must be {"env": "VARIABLE"} or {"file": "PATH"}: a passphrase is never written in the profile',
      '/client: must be {"certificate", "key", "passphrase"?} or {"pkcs12", "passphrase"?}',
    ]);
    expect(got.join('\n')).not.toContain('S3cretPass!');
  });

  it('an inline passphrase beside pkcs12: the same, nothing about certificate and key', () => {
    expect(lines({ client: { pkcs12: 'bot.p12', passphrase: 'S3cretPass!' }, trust })).toEqual([
      '/client/passphrase: must be {"env": "VARIABLE"} or {"file": "PATH"}: a passphrase is never written in the profile',
      '/client: must be {"certificate", "key", "passphrase"?} or {"pkcs12", "passphrase"?}',
    ]);
  });

  it('a missing key is named; a mix of both forms lists what each lacks', () => {
    expect(lines({ client: { certificate: 'c.pem' }, trust })).toContain('/client: missing required property "key"');
    expect(lines({ client: { certificate: 'c.pem' }, trust })).not.toContain('/client: missing required property "pkcs12"');
    const mixed = lines({ client: { pkcs12: 'bot.p12', certificate: 'c.pem' }, trust });
    expect(mixed).toEqual(expect.arrayContaining(['/client: missing required property "key"', '/client: unknown property "pkcs12" (check the spelling against the schema)', '/client: unknown property "certificate" (check the spelling against the schema)']));
  });
});
