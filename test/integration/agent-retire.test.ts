/**
 * AgentPool.retire against a real mTLS server: after a profile's material changes, the agents of
 * the old material close their idle connections and leave the pool, so the backend stops seeing
 * the old identity and no old connection is reused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadProfile } from '../../src/definitions/profiles.js';
import type { NodeDefinition } from '../../src/definitions/types.js';
import { invoke } from '../../src/invoke/execute.js';
import { AgentPool } from '../../src/tls/agents.js';
import { waitFor } from '../helpers/net.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startMtlsServer, type MtlsServer } from '../helpers/servers.js';

let pki: TestPki;
let server: MtlsServer;

beforeAll(async () => {
  pki = await createTestPki();
  server = await startMtlsServer({ key: pki.server.keyPem, cert: pki.server.certPem + pki.intermediate.certPem, ca: pki.root.certPem });
});
afterAll(async () => {
  await server?.close();
  await pki?.cleanup();
});

describe('AgentPool.retire', () => {
  it("closes the old material's idle connections and takes its agents out of the pool", async () => {
    const node: NodeDefinition = { id: 'retire', request: { method: 'GET', url: `https://localhost:${server.port}/` }, tls: { profile: 'bank' }, retry: { limit: 0 } };
    const file = pki.profile('bank');
    const v1 = await loadProfile(file);
    const agents = new AgentPool();
    try {
      expect((await invoke(node, {}, { profile: () => v1, agents })).ok).toBe(true);
      expect(agents.size).toBe(1);
      expect(agents.socketCount()).toBe(1);

      // New material (another trust file order is enough for a new version).
      const v2 = await loadProfile(pki.profile('bank', { client: { certificate: pki.files.clientChain, key: pki.files.clientKey }, trust: { ca: [pki.files.root, pki.files.intermediate] } }));
      expect(v2.version).not.toBe(v1.version);
      expect(agents.retire('bank', v2.version)).toBe(1);
      expect(agents.size).toBe(0);
      expect(agents.socketCount()).toBe(0);
      // The old idle connection was closed on our side: the server sees it gone.
      await waitFor(() => new Promise<boolean>((resolve) => server.server.getConnections((_e, n) => resolve(n === 0))), 2_000, 20, 'old connection closed');
      const connections = server.connections;
      const second = await invoke(node, {}, { profile: () => v2, agents });
      expect(second.ok).toBe(true);
      expect(second.tls?.connectionReused).toBe(false);
      expect(server.connections).toBe(connections + 1);
    } finally {
      agents.destroy();
    }
  });
});
