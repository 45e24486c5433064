/**
 * An issuer whose metadata cannot be had (refused, untrusted certificate, 404, not JSON) fails the
 * node's token step: phase auth, the Result's `auth` says discovery failed at which metadata URL,
 * and the hint is about the authorization server, not the node's backend.
 */
import type http from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { NodeDefinition } from '../../src/definitions/types.js';
import { loadProfile } from '../../src/definitions/profiles.js';
import { invoke } from '../../src/invoke/execute.js';
import { MemoryTokenCache } from '../../src/invoke/token-cache.js';
import { mintCa, mintLeaf } from '../../src/pki/mint.js';
import type { LoadedProfile } from '../../src/pki/types.js';
import { AgentPool } from '../../src/tls/agents.js';
import { runCli } from '../helpers/cli.js';
import { freePort } from '../helpers/net.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startMtlsServer, type MtlsServer } from '../helpers/servers.js';

describe('OAuth 2.0 discovery failures are auth failures of the authorization server', () => {
  let pki: TestPki;
  let api: MtlsServer;
  let apiCalls = 0;
  /** Answers every metadata request with `answer`. */
  let as: MtlsServer;
  let answer: { status: number; type: string; body: string };
  /** An authorization server whose certificate comes from a CA the profile does not trust. */
  let foreign: MtlsServer;
  let profile: LoadedProfile;
  const agents = new AgentPool();

  const node = (issuer: string): NodeDefinition => ({
    id: 'list-accounts',
    request: { method: 'GET', url: `https://localhost:${api.port}/accounts` },
    tls: { profile: 'bank' },
    retry: { limit: 0 },
    auth: { type: 'oauth2-client-credentials', issuer, clientId: 'bot-client-1', clientAuth: 'tls_client_auth' },
  });
  const call = (issuer: string) => invoke(node(issuer), {}, { agents, tokens: new MemoryTokenCache(), profile: () => profile });

  beforeAll(async () => {
    pki = await createTestPki();
    const otherRoot = await mintCa({ subject: 'CN=Other Root,O=elsewhere' });
    const otherLeaf = await mintLeaf({ subject: 'CN=localhost,O=elsewhere', issuer: otherRoot, usage: 'server', dnsNames: ['localhost'] });
    const tls = { key: pki.server.keyPem, cert: pki.server.certPem + pki.intermediate.certPem, ca: pki.root.certPem };
    api = await startMtlsServer({
      ...tls,
      handler: (req, res) => {
        apiCalls++;
        req.resume();
        res.end('{}');
      },
    });
    as = await startMtlsServer({
      ...tls,
      handler: (req: http.IncomingMessage, res: http.ServerResponse) => {
        req.resume();
        res.writeHead(answer.status, { 'content-type': answer.type });
        res.end(answer.body);
      },
    });
    foreign = await startMtlsServer({ key: otherLeaf.keyPem, cert: otherLeaf.certPem, ca: pki.root.certPem });
    profile = await loadProfile(pki.profile('bank'));
  });
  beforeEach(() => {
    apiCalls = 0;
  });
  afterAll(async () => {
    agents.destroy();
    await Promise.all([api?.close(), as?.close(), foreign?.close()]);
    await pki?.cleanup();
  });

  it('connection refused: phase auth, connect_failed, the auth object names the metadata URL, the hint the authorization server', async () => {
    const issuer = `https://localhost:${await freePort()}`;
    const r = await call(issuer);
    // Before: phase "connect", no auth object, hint "check that the backend is up and reachable".
    expect(r.failure).toMatchObject({ phase: 'auth', category: 'connect_failed', code: 'ECONNREFUSED' });
    expect(r.auth).toEqual({ type: 'oauth2-client-credentials', tokenEndpoint: null, endpointSource: 'discovery', metadataUrl: `${issuer}/.well-known/openid-configuration`, clientAuth: 'tls_client_auth', status: null, cached: false, expiresIn: null, binding: null, token: null });
    expect(r.failure?.hint).toContain(`authorization server of issuer ${issuer}`);
    expect(r.failure?.hint).not.toContain('backend');
    expect(apiCalls).toBe(0);
  });

  it("an untrusted certificate on the issuer: phase auth, server_cert_untrusted, the auth object filled", async () => {
    const issuer = `https://localhost:${foreign.port}`;
    const r = await call(issuer);
    // Before: phase "tls" and no auth object.
    expect(r.failure).toMatchObject({ phase: 'auth', category: 'server_cert_untrusted' });
    expect(r.auth).toMatchObject({ tokenEndpoint: null, endpointSource: 'discovery', metadataUrl: `${issuer}/.well-known/openid-configuration`, status: null });
    expect(r.failure?.hint).toContain(`authorization server of issuer ${issuer}`);
    expect(r.failure?.hint).not.toContain('backend');
    expect(r.tls?.serverChain[0]?.subject).toContain('CN=localhost');
    expect(apiCalls).toBe(0);
  });

  it('404 at both well-known locations, and a page that is not JSON: SVCNODE_DISCOVERY_FAILED with the auth object', async () => {
    const issuer = `https://localhost:${as.port}`;
    answer = { status: 404, type: 'text/plain', body: 'not found' };
    const missing = await call(issuer);
    expect(missing.failure).toMatchObject({ phase: 'auth', code: 'SVCNODE_DISCOVERY_FAILED' });
    // Before: no auth object.
    expect(missing.auth).toMatchObject({ tokenEndpoint: null, endpointSource: 'discovery', metadataUrl: `${issuer}/.well-known/oauth-authorization-server`, status: 404 });
    expect(missing.failure?.hint).toContain(issuer);

    answer = { status: 200, type: 'text/html', body: '<html>sign in</html>' };
    const page = await call(issuer);
    expect(page.failure).toMatchObject({ phase: 'auth', code: 'SVCNODE_DISCOVERY_FAILED' });
    expect(page.failure?.message).toContain('text/html');
    expect(page.auth).toMatchObject({ tokenEndpoint: null, endpointSource: 'discovery', metadataUrl: `${issuer}/.well-known/openid-configuration`, status: 200 });
    expect(apiCalls).toBe(0);
  });

  it('dry-run prints the failed discovery as the token step, phase auth', async () => {
    const issuer = `https://localhost:${await freePort()}`;
    const file = join(pki.dir, 'list-accounts-oauth2.json');
    writeFileSync(file, JSON.stringify(node(issuer)));
    const r = await runCli(['dry-run', file, '--profiles', pki.profilesDir]);
    expect(r.code).toBe(5);
    expect(r.stdout).toContain('token       not requested: no token endpoint discovered (tls_client_auth)');
    expect(r.stdout).toContain(`metadata GET ${issuer}/.well-known/openid-configuration: no answer`);
    expect(r.stdout).toContain('FAILED      connect_failed (ECONNREFUSED, phase auth)');
  });
});
