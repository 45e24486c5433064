/**
 * An authentication endpoint that sheds load (429 or 503 with Retry-After) is called again after
 * the wait it asked for, not after the jittered backoff, although the Result never reports that
 * endpoint's response. One real mTLS server answers the login endpoint, the OAuth 2.0 token
 * endpoint and the API; the dry-run retry loop and a worker on a real Redis are both checked.
 */
import type http from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { NodeDefinition } from '../../src/definitions/types.js';
import { loadProfile } from '../../src/definitions/profiles.js';
import { invokeWithRetries } from '../../src/invoke/attempts.js';
import { invoke } from '../../src/invoke/execute.js';
import { storedResult } from '../../src/invoke/result.js';
import { retryDelay } from '../../src/invoke/retry.js';
import { MemoryTokenCache } from '../../src/invoke/token-cache.js';
import type { LoadedProfile } from '../../src/pki/types.js';
import { AgentPool } from '../../src/tls/agents.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startMtlsServer, type MtlsServer } from '../helpers/servers.js';
import { startWorkerRig, type WorkerRig } from '../helpers/worker-rig.js';

/** When each authentication request arrived, and how many to refuse before answering with a token. */
const calls: Record<'/login' | '/token', number[]> = { '/login': [], '/token': [] };
const refusals = { count: 1, retryAfter: '2' as string | undefined };

const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
  req.resume();
  const path = req.url as '/login' | '/token' | '/api';
  const json = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
  if (path === '/api') return json(200, { ok: true });
  const seen = calls[path];
  seen.push(Date.now());
  if (seen.length <= refusals.count) {
    const wait: Record<string, string> = refusals.retryAfter === undefined ? {} : { 'retry-after': refusals.retryAfter };
    return path === '/login' ? json(429, { message: 'too many logins' }, wait) : json(503, { error: 'temporarily_unavailable' }, wait);
  }
  return path === '/login' ? json(200, { token: 'session-1' }) : json(200, { access_token: 'at-1', token_type: 'Bearer', expires_in: 300 });
};

function nodes(port: number, retry: NodeDefinition['retry'] = {}): Record<'session' | 'oauth2', NodeDefinition> {
  return {
    session: {
      id: 'session',
      request: { method: 'GET', url: `https://localhost:${port}/api` },
      tls: { profile: 'bank' },
      retry,
      auth: { type: 'certificate-session', tokens: [{ url: `https://localhost:${port}/login`, header: 'x-session' }] },
    },
    oauth2: {
      id: 'oauth2',
      request: { method: 'GET', url: `https://localhost:${port}/api` },
      tls: { profile: 'bank' },
      retry,
      auth: { type: 'oauth2-client-credentials', tokenUrl: `https://localhost:${port}/token`, clientId: 'bot', clientAuth: 'tls_client_auth' },
    },
  };
}
const endpointOf = { session: '/login', oauth2: '/token' } as const;

beforeEach(() => {
  calls['/login'] = [];
  calls['/token'] = [];
  refusals.count = 1;
  refusals.retryAfter = '2';
});

describe('in process (the retry loop of dry-run --retry)', () => {
  let pki: TestPki;
  let server: MtlsServer;
  let profile: LoadedProfile;
  const agents = new AgentPool();
  const deps = (): Parameters<typeof invoke>[2] => ({ profile: () => profile, agents, tokens: new MemoryTokenCache() });

  beforeAll(async () => {
    pki = await createTestPki();
    server = await startMtlsServer({ key: pki.server.keyPem, cert: pki.server.certPem + pki.intermediate.certPem, ca: pki.root.certPem, handler });
    profile = await loadProfile(pki.profile('bank'));
  });

  afterAll(async () => {
    agents.destroy();
    await server?.close();
    await pki?.cleanup();
  });

  for (const kind of ['session', 'oauth2'] as const) {
    it(`${kind}: the endpoint is asked again after its Retry-After (2 s), and the call passes`, async () => {
      const result = await invokeWithRetries(nodes(server.port)[kind], {}, deps());
      expect(result.failure).toBeNull();
      expect(result.attempts).toBe(2);
      const seen = calls[endpointOf[kind]];
      expect(seen).toHaveLength(2);
      // Without it the full-jitter backoff of the first retry is below 500 ms.
      expect((seen[1] as number) - (seen[0] as number)).toBeGreaterThanOrEqual(1_900);
    });

    it(`${kind}: the failure says what was asked; the wait survives the stored copy and is never serialised`, async () => {
      const node = nodes(server.port, { limit: 0 })[kind];
      const result = await invoke(node, {}, deps());
      expect(result.failure?.code).toBe('SVCNODE_TOKEN_ENDPOINT_UNAVAILABLE');
      expect(result.failure?.message).toContain('(Retry-After: 2 s)');
      // The final Result of a node without retries must not promise one: the hint says it depends on retry.limit.
      expect(result.failure?.hint).toContain('retried within its retry.limit');
      expect(result.response).toBeNull();
      const retrying = { ...node, retry: {} };
      expect(retryDelay(result, retrying, 1)).toBe(2_000);
      expect(retryDelay(storedResult(result, node), retrying, 1)).toBe(2_000);
      expect(JSON.stringify(result)).not.toMatch(/retryAfter|2000/i);
    });

    it(`${kind}: a wait longer than retry.maxBackoffMs ends the retries (before: retried after maxBackoffMs, sooner than asked)`, async () => {
      refusals.retryAfter = '30';
      const result = await invoke(nodes(server.port, { limit: 0 })[kind], {}, deps());
      expect(result.failure?.message).toContain('(Retry-After: 30 s)');
      expect(retryDelay(result, nodes(server.port, { maxBackoffMs: 1_500 })[kind], 1)).toBeUndefined();
      expect(retryDelay(result, nodes(server.port, { maxBackoffMs: 30_000 })[kind], 1)).toBeGreaterThan(29_000);
    });

    it(`${kind}: without Retry-After the jittered backoff applies`, async () => {
      refusals.retryAfter = undefined;
      const result = await invoke(nodes(server.port, { limit: 0 })[kind], {}, deps());
      expect(result.failure?.message).not.toContain('Retry-After');
      expect(retryDelay(result, nodes(server.port)[kind], 1, () => 0.5)).toBe(250);
    });
  }
});

describe('in a worker', () => {
  let rig: WorkerRig;
  let server: MtlsServer;

  beforeAll(async () => {
    rig = await startWorkerRig({ dirPrefix: 'svcnode-auth-wait-', worker: { concurrency: 4 } });
    server = await startMtlsServer({ key: rig.pki.server.keyPem, cert: rig.pki.server.certPem + rig.pki.intermediate.certPem, ca: rig.pki.root.certPem, handler });
    for (const node of Object.values(nodes(server.port))) writeFileSync(join(rig.dir, 'nodes', `${node.id}.json`), JSON.stringify(node));
  });

  afterAll(async () => {
    await rig?.close();
    await server?.close();
  });

  it('a job whose token request was refused with Retry-After: 2 waits 2 s in the delayed set, then completes', async () => {
    await rig.worker.nodeWatcher.check();
    const result = await rig.client.invoke('oauth2', {}, { timeoutMs: 30_000 });
    expect(result.failure).toBeNull();
    expect(result.attempts).toBe(2);
    const seen = calls['/token'];
    expect(seen).toHaveLength(2);
    expect((seen[1] as number) - (seen[0] as number)).toBeGreaterThanOrEqual(1_900);
  });
});
