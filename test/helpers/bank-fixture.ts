import { afterAll, beforeAll } from 'vitest';
import { loadProfile } from '../../src/definitions/profiles.js';
import type { InvokeDeps } from '../../src/invoke/execute.js';
import { AgentPool } from '../../src/tls/agents.js';
import { hookValue } from './hook-value.js';
import { createTestPki, type TestPki } from './pki.js';
import { startMtlsServer, type MtlsServer, type MtlsServerOptions } from './servers.js';

export interface BankFixture {
  /** Set in beforeAll. */
  readonly pki: TestPki;
  /** One AgentPool and the loaded profile `bank` for every invoke() in the file. */
  readonly deps: InvokeDeps;
  /** An mTLS server trusting the test root (default: the test server chain), closed in afterAll. */
  serve(o?: Partial<MtlsServerOptions>): Promise<MtlsServer>;
}

/**
 * Registers beforeAll/afterAll for invoke() tests on the profile `bank`: a test PKI, its loaded
 * profile and one AgentPool; afterAll destroys the pool, closes the servers and the PKI.
 */
export function useBankFixture(): BankFixture {
  let pki: TestPki | undefined;
  let agents: AgentPool | undefined;
  let deps: InvokeDeps | undefined;
  const servers: MtlsServer[] = [];
  beforeAll(async () => {
    pki = await createTestPki();
    const profile = await loadProfile(pki.profile('bank'));
    agents = new AgentPool();
    deps = { profile: () => profile, agents };
  });
  afterAll(async () => {
    agents?.destroy();
    await Promise.all(servers.map((s) => s.close()));
    await pki?.cleanup();
  });
  return {
    get pki() {
      return hookValue(pki, 'bank fixture');
    },
    get deps() {
      return hookValue(deps, 'bank fixture');
    },
    async serve(o = {}) {
      const p = hookValue(pki, 'bank fixture');
      const s = await startMtlsServer({ key: p.server.keyPem, cert: p.server.certPem + p.intermediate.certPem, ca: p.root.certPem, ...o });
      servers.push(s);
      return s;
    },
  };
}
