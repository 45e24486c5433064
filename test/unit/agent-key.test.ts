/**
 * The agent-pool key is the security invariant of connection reuse: a kept-alive connection or a
 * resumed TLS session is only ever shared by calls whose key is equal. Different pins, subject
 * patterns, profiles (or their material), origins, SNI, TLS versions or proxies must give
 * different keys; equal settings must give one key.
 */
import { describe, expect, it } from 'vitest';
import type { LoadedProfile } from '../../src/pki/types.js';
import { agentKey, type AgentSpec } from '../../src/tls/agents.js';

const LIMITS = { connectMs: 1_000, handshakeMs: 1_000 };

function profile(name: string, version: string): LoadedProfile {
  return { name, version, file: `/p/${name}.json`, client: undefined, trust: { certificates: [], systemRoots: true }, policy: { minKeyBits: 2048, expiryWarningDays: 90 }, findings: [] };
}

const bank = profile('bank', 'v1');
const bankRotated = profile('bank', 'v2');
const other = profile('other', 'v1');

function spec(o: Partial<AgentSpec> = {}): AgentSpec {
  return { profile: bank, origin: new URL('https://api.bank.example'), rules: {}, limits: LIMITS, keepAliveMs: 4_000, ...o };
}


describe('agentKey', () => {
  it('equal settings in separate spec objects share one key', () => {
    expect(agentKey(spec({ rules: { pinnedPublicKeys: ['sha256//A'] } }))).toBe(agentKey(spec({ rules: { pinnedPublicKeys: ['sha256//A'] } })));
  });

  it.each([
    ['another pin set', spec({ rules: { pinnedPublicKeys: ['sha256//B'] } })],
    ['no pins at all', spec()],
    ['a subject pattern', spec({ rules: { pinnedPublicKeys: ['sha256//A'], serverSubjectPatterns: ['CN=api.*'] } })],
    ['another profile', spec({ profile: other, rules: { pinnedPublicKeys: ['sha256//A'] } })],
    ['the same profile after rotation (new material)', spec({ profile: bankRotated, rules: { pinnedPublicKeys: ['sha256//A'] } })],
    ['another origin', spec({ origin: new URL('https://api.bank.example:8443'), rules: { pinnedPublicKeys: ['sha256//A'] } })],
    ['another SNI', spec({ servername: 'other.example', rules: { pinnedPublicKeys: ['sha256//A'] } })],
    ['another minimum TLS version', spec({ minVersion: 'TLSv1.3', rules: { pinnedPublicKeys: ['sha256//A'] } })],
    ['a proxy', spec({ proxyUrl: 'http://proxy:3128', rules: { pinnedPublicKeys: ['sha256//A'] } })],
    ['another idle limit (timeouts.keepAliveMs)', spec({ keepAliveMs: 500, rules: { pinnedPublicKeys: ['sha256//A'] } })],
  ])('%s gives a different key', (_label, changed) => {
    expect(agentKey(changed)).not.toBe(agentKey(spec({ rules: { pinnedPublicKeys: ['sha256//A'] } })));
  });

  it('subject patterns alone separate agents too', () => {
    expect(agentKey(spec({ rules: { serverSubjectPatterns: ['CN=a'] } }))).not.toBe(agentKey(spec({ rules: { serverSubjectPatterns: ['CN=b'] } })));
    expect(agentKey(spec({ rules: { serverSubjectPatterns: ['CN=a'] } }))).not.toBe(agentKey(spec()));
  });

  it('proxy trust separates agents: another proxy.tls.ca is another key', () => {
    const a = spec({ proxyUrl: 'https://proxy', proxyTls: { context: {} as never, id: 'ca-1' } });
    const b = spec({ proxyUrl: 'https://proxy', proxyTls: { context: {} as never, id: 'ca-2' } });
    expect(agentKey(a)).not.toBe(agentKey(b));
  });
});
