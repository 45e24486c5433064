import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { loadPrivateKey } from '../../src/pki/keys.js';

describe('a wrong passphrase on an encrypted key', () => {
  it('is always SVCNODE_BAD_PASSPHRASE, also when the CBC padding happens to check out (about 1 in 256)', () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const codes = new Map<string, number>();
    // Each export has a fresh salt and IV, so 1,500 tries hit the lucky padding case with ~99.7 % odds.
    for (let i = 0; i < 1_500; i++) {
      const text = privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-128-cbc', passphrase: 'right' }) as string;
      try {
        loadPrivateKey({ format: 'pem', text, encrypted: true }, 'wrong', 'key.pem');
        codes.set('loaded', (codes.get('loaded') ?? 0) + 1);
      } catch (error) {
        const code = (error as { code: string }).code;
        codes.set(code, (codes.get(code) ?? 0) + 1);
      }
    }
    expect(Object.fromEntries(codes)).toEqual({ SVCNODE_BAD_PASSPHRASE: 1_500 });
  });
});
