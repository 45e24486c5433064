import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { NodeDefinition, OAuth2ClientCredentialsAuth } from '../../src/definitions/types.js';
import type { InvokeDeps } from '../../src/invoke/execute.js';
import type { TokenCache } from '../../src/invoke/token-cache.js';
import { mintCa, mintLeaf, type MintedCert } from '../../src/pki/mint.js';
import { loadProfile } from '../../src/definitions/profiles.js';
import type { LoadedProfile } from '../../src/pki/types.js';
import type { AgentPool } from '../../src/tls/agents.js';
import { certificateJwk, startAuthorizationServer, subjectDn, type AuthorizationServer } from './oauth2-server.js';
import { createTestPki, type TestPki } from './pki.js';

/** Environment variable the client_secret_* tests read the secret from. */
export const SECRET_ENV = 'SVCNODE_TEST_OAUTH_SECRET';

export interface OAuth2Fixture {
  pki: TestPki;
  as: AuthorizationServer;
  /** A second client certificate from the same CA (profile `other`, client `bot-other`). */
  other: MintedCert;
  /** A self-signed client certificate (profile `selfsigned`, client `bot-self-signed`). */
  selfSigned: MintedCert;
  /** Loaded profiles `bank`, `other`, `selfsigned`. */
  profiles: Map<string, LoadedProfile>;
  /** The client secret of `bot-basic` and `bot-post`. */
  secret: string;
  /** A node calling the resource server with OAuth 2.0 auth (default: tls_client_auth as `bot-tls` at the mTLS token endpoint). */
  node(auth?: Partial<OAuth2ClientCredentialsAuth>, profile?: string, extra?: Partial<NodeDefinition>): NodeDefinition;
  cleanup(): Promise<void>;
}

/**
 * A test PKI, the authorization server with one client per authentication method, and the
 * profiles that authenticate as them.
 */
export async function createOAuth2Fixture(o: { accessTokenTtl?: number } = {}): Promise<OAuth2Fixture> {
  const pki = await createTestPki();
  const other = await mintLeaf({ subject: 'CN=other-bot,O=svcnode tests', issuer: pki.intermediate, usage: 'client' });
  const selfSigned = await mintCa({ subject: 'CN=self-signed-bot,O=svcnode tests' });
  const secret = `s3cret-${randomBytes(12).toString('hex')}`;
  const ours = subjectDn(pki.client.certPem);
  const as = await startAuthorizationServer(pki, [
    { client_id: 'bot-tls', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: ours },
    { client_id: 'bot-other', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: subjectDn(other.certPem) },
    { client_id: 'bot-self-signed', token_endpoint_auth_method: 'self_signed_tls_client_auth', jwks: { keys: [certificateJwk(selfSigned.certPem)] } },
    { client_id: 'bot-jwt', token_endpoint_auth_method: 'private_key_jwt', token_endpoint_auth_signing_alg: 'RS256', jwks: { keys: [certificateJwk(pki.client.certPem)] } },
    { client_id: 'bot-basic', token_endpoint_auth_method: 'client_secret_basic', client_secret: secret },
    { client_id: 'bot-post', token_endpoint_auth_method: 'client_secret_post', client_secret: secret },
  ], o);
  pki.profile('bank');
  pki.profile('other', { client: { certificate: pki.write('other.pem', other.certPem, pki.intermediate.certPem), key: pki.write('other.key', other.keyPem) }, trust: { ca: [pki.files.root] } });
  pki.profile('selfsigned', { client: { certificate: pki.write('self.pem', selfSigned.certPem), key: pki.write('self.key', selfSigned.keyPem) }, trust: { ca: [pki.files.root] } });
  const profiles = new Map<string, LoadedProfile>();
  for (const name of ['bank', 'other', 'selfsigned']) profiles.set(name, await loadProfile(join(pki.profilesDir, `${name}.json`)));
  const node = (auth: Partial<OAuth2ClientCredentialsAuth> = {}, profile = 'bank', extra: Partial<NodeDefinition> = {}): NodeDefinition => ({
    id: 'accounts',
    request: { method: 'GET', url: `${as.resource.url}/accounts` },
    tls: { profile },
    retry: { limit: 0 },
    auth: { type: 'oauth2-client-credentials', tokenUrl: as.mtlsTokenUrl, clientId: 'bot-tls', clientAuth: 'tls_client_auth', scope: 'accounts', ...auth },
    ...extra,
  });
  return {
    pki,
    as,
    other,
    selfSigned,
    profiles,
    secret,
    node,
    cleanup: async () => {
      await as.close();
      await pki.cleanup();
    },
  };
}

/**
 * InvokeDeps over the fixture's profiles and the token cache in use, both read at each call: the
 * deps can be made before beforeAll creates the fixture and beforeEach a fresh cache.
 */
export function oauth2Deps(fixture: () => OAuth2Fixture, agents: AgentPool, tokens: () => TokenCache): InvokeDeps {
  return {
    agents,
    profile: (name) => fixture().profiles.get(name) as LoadedProfile,
    get tokens() {
      return tokens();
    },
  };
}
