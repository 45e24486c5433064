/**
 * Revocation on resumed TLS sessions. A resumed handshake skips certificate verification, so
 * what was true of the chain at the full handshake (not revoked, CRLs current) is judged again
 * against the CRLs as they are now: a certificate revoked since, or a CRL gone past its
 * nextUpdate in hard mode, fails the call as on a new session. A PKI run by the openssl CLI,
 * `openssl s_server` (which resumes sessions), a test HTTP server for the distribution point.
 */
import http from 'node:http';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeDefinition, ProfileDocument } from '../../src/definitions/types.js';
import { loadProfile } from '../../src/definitions/profiles.js';
import { invokeWithRetries } from '../../src/invoke/attempts.js';
import type { Result } from '../../src/invoke/result.js';
import { CRL_FETCH_DEFAULTS, CrlFetcher } from '../../src/pki/crl-fetch.js';
import type { LoadedProfile } from '../../src/pki/types.js';
import { AgentPool } from '../../src/tls/agents.js';
import { profileDeps, withAgents } from '../helpers/deps.js';
import { listen, waitFor } from '../helpers/net.js';
import { createOpensslPki, type OpensslCa, type OpensslIssued, type OpensslPki } from '../helpers/openssl-ca.js';
import { startOpensslServer, type OpensslServer } from '../helpers/servers.js';

/** A new connection per call (no kept-alive one), so each call after the first resumes the TLS session. */
const TIMEOUTS = { connectMs: 2_000, handshakeMs: 3_000, responseMs: 3_000, keepAliveMs: 0 };

let dir: string;
let crlServer: http.Server;
let base: string;
let pki: OpensslPki;
let issuing: OpensslCa;
let leaf: OpensslIssued;
let server: OpensslServer;
/** The CRL file the distribution point serves. */
let served = '';
let hits = 0;
const after: Array<() => Promise<void>> = [];

function node(retry: NodeDefinition['retry'] = { limit: 0 }, to: OpensslServer = server): NodeDefinition {
  return { id: 'resumed', request: { method: 'GET', url: `https://localhost:${to.port}/` }, tls: { profile: 'bank' }, timeouts: TIMEOUTS, retry };
}

async function profileWith(trust: NonNullable<ProfileDocument['trust']>, crlFetcher = new CrlFetcher()): Promise<LoadedProfile> {
  const file = join(dir, 'profiles', 'bank.json');
  writeFileSync(file, JSON.stringify({ trust: { ca: [pki.root.cert, issuing.cert], ...trust } }));
  return loadProfile(file, { crlFetcher });
}

function call(profile: LoadedProfile, agents: AgentPool, retry?: NodeDefinition['retry'], to?: OpensslServer): Promise<Result & { attempts?: number }> {
  return invokeWithRetries(node(retry, to), {}, profileDeps(new Map([['bank', profile]]), agents));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'svcnode-resumed-'));
  mkdirSync(join(dir, 'profiles'));
  crlServer = http.createServer((req, res) => {
    hits++;
    if (!served || req.url !== '/live/issuing.crl') res.writeHead(404).end();
    else res.writeHead(200, { 'content-type': 'application/pkix-crl' }).end(readFileSync(served));
  });
  base = `http://127.0.0.1:${await listen(crlServer, 0)}`;
  pki = createOpensslPki(dir);
  issuing = pki.addIntermediate('resumed-issuing', 'Bank Resumed Issuing CA');
  leaf = pki.issueServer('live', { ca: issuing, crlUrl: `${base}/live/issuing.crl` });
  server = await startOpensslServer({ certFile: leaf.cert, keyFile: leaf.key, chainFile: issuing.cert, verify: 'none', tls: 'both' });
}, 30_000);

afterAll(async () => {
  crlServer?.closeAllConnections();
  await Promise.all([server?.close(), ...after.map((close) => close()), new Promise((r) => (crlServer ? crlServer.close(r) : r(undefined)))]);
  await rm(dir, { recursive: true, force: true });
});

describe('revocation on resumed TLS sessions', () => {
  it('hard mode, trust.crl: a CRL gone past its nextUpdate fails the next call on a resumed session, as on a new one', async () => {
    const rootCrl = pki.gencrl(pki.root, join(dir, 'root.crl'));
    const shortLived = pki.gencrl(issuing, join(dir, 'issuing-short.crl'), { nextUpdate: new Date(Date.now() + 4_000) });
    const profile = await profileWith({ crl: [rootCrl, shortLived], revocation: { mode: 'hard' } });
    const agents = new AgentPool();
    try {
      const first = await call(profile, agents);
      expect(first.failure, JSON.stringify(first.failure)).toBeNull();
      const second = await call(profile, agents);
      expect(second.failure, JSON.stringify(second.failure)).toBeNull();
      expect(second.tls?.sessionReused).toBe(true);
      await waitFor(() => Date.now() > Date.parse(readCrlNextUpdate(profile)) + 500, 10_000, 100, 'the CRL past its nextUpdate');
      // Before: the resumed session passed for as long as sessions were resumed (minutes in a worker).
      const third = await call(profile, agents);
      expect(third.failure, JSON.stringify(third)).toMatchObject({ category: 'server_cert_untrusted', code: 'server_cert_revocation_unknown' });
      expect(third.failure?.message).toContain('was due for renewal');
    } finally {
      agents.destroy();
    }
  });

  it('distribution points, hard mode: a server revoked after the first handshake fails once its learnt CRL is due and refreshed', async () => {
    served = pki.gencrl(issuing, join(dir, 'cdp-a.crl'), { nextUpdate: new Date(Date.now() + 4_000) });
    // A downloaded CRL is refreshed at most once a minute: the fetcher's clock jumps that minute below.
    let skew = 0;
    const fetcher = new CrlFetcher(undefined, () => Date.now() + skew);
    const profile = await profileWith({ crl: [pki.gencrl(pki.root, join(dir, 'root-cdp.crl'))], revocation: { distributionPoints: true, mode: 'hard' } }, fetcher);
    const agents = new AgentPool();
    try {
      // The first call waits for the download of the learnt CRL (a retried, pending verdict).
      const first = await call(profile, agents, { limit: 5, backoffMs: 200 });
      expect(first.failure, JSON.stringify(first.failure)).toBeNull();
      const second = await call(profile, agents);
      expect(second.failure, JSON.stringify(second.failure)).toBeNull();
      expect(second.tls?.sessionReused).toBe(true);
      const downloads = hits;
      // Revoked now; the worker holds CRL A until its nextUpdate.
      pki.revoke(issuing, leaf.cert);
      served = pki.gencrl(issuing, join(dir, 'cdp-b.crl'));
      await new Promise((resolve) => setTimeout(resolve, 4_500));
      skew = CRL_FETCH_DEFAULTS.minIntervalMs + 1_000;
      // Before: every call passed on the resumed session and the learnt CRL was never downloaded again.
      const later = await call(profile, agents, { limit: 5, backoffMs: 200 });
      expect(later.failure, JSON.stringify(later)).toMatchObject({ category: 'server_cert_revoked' });
      expect(hits).toBeGreaterThan(downloads);
    } finally {
      agents.destroy();
    }
  }, 30_000);
});


describe('a distribution point that is also another profile\'s trust.crl URL', () => {
  it("the learnt copy takes the newer CRL the other profile's reload downloaded (it stayed stale, failing every new connection)", async () => {
    // A leaf of its own: the one above was revoked. Same issuer, same distribution point.
    const fresh = pki.issueServer('shared', { ca: issuing, crlUrl: `${base}/live/issuing.crl` });
    const other = await startOpensslServer({ certFile: fresh.cert, keyFile: fresh.key, chainFile: issuing.cert, verify: 'none', tls: 'both' });
    after.push(() => other.close());
    served = pki.gencrl(issuing, join(dir, 'shared-a.crl'), { nextUpdate: new Date(Date.now() + 3_000) });
    let skew = 0;
    const fetcher = new CrlFetcher(undefined, () => Date.now() + skew);
    const rootCrl = pki.gencrl(pki.root, join(dir, 'root-shared.crl'));
    const learning = await profileWith({ crl: [rootCrl], revocation: { distributionPoints: true, mode: 'hard' } }, fetcher);
    const first = await withAgents((agents) => call(learning, agents, { limit: 5, backoffMs: 200 }, other));
    expect(first.failure, JSON.stringify(first.failure)).toBeNull();
    await new Promise((resolve) => setTimeout(resolve, 3_500));
    // The URL serves a current CRL now; another profile lists it in trust.crl and reloads (a minute later, as the fetcher sees it).
    served = pki.gencrl(issuing, join(dir, 'shared-b.crl'));
    skew = CRL_FETCH_DEFAULTS.minIntervalMs + 1_000;
    const listing = await profileWith({ crl: [rootCrl, `${base}/live/issuing.crl`], revocation: { mode: 'hard' } }, fetcher);
    expect(listing.trust.crls?.some((c) => c.source === `${base}/live/issuing.crl` && (c.nextUpdate?.getTime() ?? 0) > Date.now() + 3_600_000)).toBe(true);
    const downloads = hits;
    const later = await withAgents((agents) => call(learning, agents, undefined, other));
    expect(later.failure, JSON.stringify(later.failure)).toBeNull();
    expect(hits).toBe(downloads);
  }, 30_000);
});

/** The nextUpdate of the profile's CRL of the issuing CA. */
function readCrlNextUpdate(profile: LoadedProfile): string {
  const crl = profile.trust.crls?.find((c) => c.issuerName.includes('Resumed Issuing'));
  return crl?.nextUpdate?.toISOString() ?? new Date(0).toISOString();
}
