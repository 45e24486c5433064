import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../src/errors.js';
import type { LoadedProfile } from '../../src/pki/types.js';
import { agentKey, type AgentSpec } from '../../src/tls/agents.js';
import { checkTlsPolicy, policyOptions } from '../../src/tls/tls-policy.js';

const profile = { name: 'bank', version: 'v1' } as unknown as LoadedProfile;
const spec = (extra: Partial<AgentSpec> = {}): AgentSpec => ({
  profile,
  origin: new URL('https://api.bank.example'),
  rules: {},
  limits: { connectMs: 1000, handshakeMs: 1000 },
  keepAliveMs: 4000,
  ...extra,
});

describe('TLS policy in the agent-pool key', () => {
  it('different maxVersion, ciphers or legacyServerConnect give different keys', () => {
    const keys = [
      agentKey(spec()),
      agentKey(spec({ policy: { maxVersion: 'TLSv1.2' } })),
      agentKey(spec({ policy: { maxVersion: 'TLSv1.3' } })),
      agentKey(spec({ policy: { ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' } })),
      agentKey(spec({ policy: { ciphers: 'ECDHE-RSA-AES256-GCM-SHA384' } })),
      agentKey(spec({ policy: { legacyServerConnect: true } })),
    ];
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('equal policies give equal keys, and an empty policy equals none', () => {
    expect(agentKey(spec({ policy: { maxVersion: 'TLSv1.2', ciphers: 'AES128-SHA' } }))).toBe(agentKey(spec({ policy: { ciphers: 'AES128-SHA', maxVersion: 'TLSv1.2' } })));
    expect(agentKey(spec({ policy: {} }))).toBe(agentKey(spec()));
  });

  it('maps legacyServerConnect to SSL_OP_LEGACY_SERVER_CONNECT', () => {
    expect(policyOptions({ legacyServerConnect: true }).secureOptions).toBeGreaterThan(0);
    expect(policyOptions({ legacyServerConnect: false })).toEqual({});
  });
});

describe('checkTlsPolicy', () => {
  it('refuses a cipher list OpenSSL selects nothing from, naming the field', () => {
    const error = (() => {
      try {
        checkTlsPolicy({ ciphers: 'NO-SUCH-CIPHER' }, undefined, 'node.json');
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as InvalidInputError).field).toBe('/tls/ciphers');
  });

  it('refuses maxVersion below minVersion and accepts a sane range', () => {
    expect(() => checkTlsPolicy({ maxVersion: 'TLSv1.2' }, 'TLSv1.3', 'node.json')).toThrow(/maxVersion/);
    expect(() => checkTlsPolicy({ maxVersion: 'TLSv1.3', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' }, 'TLSv1.2', 'node.json')).not.toThrow();
  });
});
