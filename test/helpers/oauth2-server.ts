/**
 * A real OAuth 2.0 authorization server for the RFC 8705 tests: oidc-provider (client
 * credentials, mTLS client authentication, certificate-bound JWT access tokens) behind Node TLS
 * fronts that terminate TLS and pass the client certificate on in headers, as a reverse proxy
 * does (nginx's $ssl_client_escaped_cert / $ssl_client_verify / $ssl_client_s_dn); plus a
 * resource server that verifies the token and its cnf.x5t#S256 against the presented certificate.
 */
import { createHash, generateKeyPairSync, verify, X509Certificate, type KeyObject } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import Provider, { type ProviderContext } from 'oidc-provider';
import { closeServer, listen, trackSockets } from './net.js';
import type { TestPki } from './pki.js';

/** The audience (resource indicator) of the access tokens. */
export const RESOURCE = 'https://api.svcnode.test';
const SCOPES = 'accounts payments';

export interface TokenRequestSeen {
  front: 'issuer' | 'mtls';
  status: number;
  clientId: string | undefined;
}

export interface AuthorizationServer {
  /** Issuer identifier: the TLS front without client certificates, which serves discovery. */
  issuer: string;
  /** The same issuer spelled with 127.0.0.1: its metadata names another issuer. */
  otherSpelling: string;
  /** Token endpoint on the mTLS front (the discovery's mtls_endpoint_aliases.token_endpoint). */
  mtlsTokenUrl: string;
  /** Token endpoint on the issuer front (no client certificate is asked for there). */
  plainTokenUrl: string;
  tokenRequests: TokenRequestSeen[];
  discoveryRequests: number;
  /** Every access token, client secret and client assertion that went through the fronts. */
  secretsSeen: string[];
  /** Answer the next N token requests with 503, as an overloaded token endpoint does. */
  unavailable: number;
  /** A misconfigured proxy: pass this certificate (PEM) to the authorization server instead of the client's. */
  forwardCertificate: string | undefined;
  resource: ResourceServer;
  /** Lifetime of the access tokens issued from now on, in seconds. */
  accessTokenTtl: number;
  close(): Promise<void>;
}

export interface ResourceServer {
  url: string;
  requests: number;
  /** Why each refused request was refused. */
  refusals: string[];
  /** Refuse every token with error="invalid_token" (a revoked token). */
  rejectAll: boolean;
}

export interface ClientRegistration {
  client_id: string;
  token_endpoint_auth_method: string;
  [attribute: string]: unknown;
}

/** A certificate's subject in the form the front passes on and clients register (tls_client_auth_subject_dn). */
export function subjectDn(certPem: string): string {
  return new X509Certificate(certPem).subject.split('\n').join(',');
}

/** The JWK of a certificate's public key with the certificate in x5c (self_signed_tls_client_auth). */
export function certificateJwk(certPem: string): Record<string, unknown> {
  const cert = new X509Certificate(certPem);
  return { ...cert.publicKey.export({ format: 'jwk' }), use: 'sig', x5c: [cert.raw.toString('base64')] };
}

const b64json = (part: string | undefined): Record<string, unknown> => JSON.parse(Buffer.from(part ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Verify an RS256 JWT access token and its binding to the presented certificate; the refusal reason or undefined. */
function refuse(token: string, asKey: KeyObject, presented: Buffer | undefined): string | undefined {
  const [h, p, s] = token.split('.');
  if (!h || !p || !s) return 'not a JWT';
  if (!verify('sha256', Buffer.from(`${h}.${p}`), asKey, Buffer.from(s, 'base64url'))) return 'bad signature';
  const claims = b64json(p);
  if (typeof claims.exp !== 'number' || claims.exp * 1000 < Date.now()) return 'expired';
  if (claims.aud !== RESOURCE) return 'wrong audience';
  const bound = (claims.cnf as Record<string, unknown> | undefined)?.['x5t#S256'];
  if (!presented) return 'no client certificate';
  if (bound !== createHash('sha256').update(presented).digest('base64url')) return 'certificate binding mismatch';
  return undefined;
}

function startResourceServer(pki: TestPki, asKey: KeyObject): Promise<ResourceServer & { close(): Promise<void> }> {
  const state = { url: '', requests: 0, refusals: [] as string[], rejectAll: false };
  const server = https.createServer({ key: pki.server.keyPem, cert: pki.server.certPem + pki.intermediate.certPem, requestCert: true, rejectUnauthorized: false }, (req, res) => {
    req.resume();
    state.requests++;
    const deny = (reason: string, challenge: string): void => {
      state.refusals.push(reason);
      res.writeHead(401, { 'www-authenticate': challenge, 'content-type': 'application/json' });
      res.end('{"error":"unauthorized"}');
    };
    const auth = req.headers.authorization ?? '';
    if (!auth.startsWith('Bearer ')) return deny('no token', 'Bearer realm="svcnode-test"');
    const presented = (req.socket as TLSSocket).getPeerCertificate().raw as Buffer | undefined;
    const reason = state.rejectAll ? 'revoked' : refuse(auth.slice(7), asKey, presented);
    if (reason) return deny(reason, `Bearer realm="svcnode-test", error="invalid_token", error_description="${reason}"`);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ accounts: [{ id: 'acc-1' }] }));
  });
  const sockets = trackSockets(server);
  return listen(server, 0).then((port) => Object.assign(state, { url: `https://localhost:${port}`, close: () => closeServer(server, sockets.sockets) }));
}

/**
 * Start oidc-provider with the given clients behind two fronts (issuer: TLS only; mtls: asks for
 * and forwards the client certificate) and the resource server. Access tokens are JWTs for
 * RESOURCE, bound to the certificate, living `accessTokenTtl` seconds (changeable later).
 */
export async function startAuthorizationServer(pki: TestPki, clients: ClientRegistration[], o: { accessTokenTtl?: number } = {}): Promise<AuthorizationServer> {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const resource = await startResourceServer(pki, publicKey);
  const providerServer = http.createServer();
  const providerSockets = trackSockets(providerServer);
  const providerPort = await listen(providerServer, 0);

  // Filled in once the fronts listen; their handlers only run after that.
  const state = {} as AuthorizationServer;
  const front = (kind: TokenRequestSeen['front']): https.Server =>
    https.createServer({ key: pki.server.keyPem, cert: pki.server.certPem + pki.intermediate.certPem, ca: pki.root.certPem, requestCert: kind === 'mtls', rejectUnauthorized: false }, (req, res) => {
      void (async () => {
        const body = await readBody(req);
        const socket = req.socket as TLSSocket;
        const headers: http.OutgoingHttpHeaders = {};
        // A client must never be able to assert a certificate itself: drop what it sent.
        for (const [name, value] of Object.entries(req.headers)) if (!name.startsWith('x-ssl-') && !name.startsWith('x-forwarded-')) headers[name] = value;
        const raw = kind === 'mtls' ? (socket.getPeerCertificate().raw as Buffer | undefined) : undefined;
        const pem = raw ? (state.forwardCertificate ?? new X509Certificate(raw).toString()) : undefined;
        if (pem) {
          headers['x-ssl-client-cert'] = encodeURIComponent(pem);
          headers['x-ssl-client-verify'] = socket.authorized || state.forwardCertificate ? 'SUCCESS' : `FAILED:${String(socket.authorizationError)}`;
          headers['x-ssl-client-s-dn'] = subjectDn(pem);
        }
        headers['x-forwarded-proto'] = 'https';
        headers['x-forwarded-host'] = req.headers.host ?? '';
        const isToken = req.method === 'POST' && req.url === '/token';
        const form = new URLSearchParams(body.toString('utf8'));
        for (const name of ['client_secret', 'client_assertion']) {
          const v = form.get(name);
          if (v) state.secretsSeen.push(v);
        }
        if (req.url?.startsWith('/.well-known/')) state.discoveryRequests++;
        if (isToken && state.unavailable > 0) {
          state.unavailable--;
          state.tokenRequests.push({ front: kind, status: 503, clientId: form.get('client_id') ?? undefined });
          res.writeHead(503, { 'content-type': 'application/json' });
          res.end('{"error":"temporarily_unavailable"}');
          return;
        }
        const upstream = http.request({ host: '127.0.0.1', port: providerPort, method: req.method, path: req.url, headers });
        upstream.on('response', (answer) => {
          void readBody(answer).then((text) => {
            if (isToken) {
              state.tokenRequests.push({ front: kind, status: answer.statusCode ?? 0, clientId: form.get('client_id') ?? undefined });
              try {
                const token = (JSON.parse(text.toString('utf8')) as { access_token?: string }).access_token;
                if (token) state.secretsSeen.push(token);
              } catch {
                // Not JSON: nothing to record.
              }
            }
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            res.end(text);
          });
        });
        upstream.on('error', () => {
          res.writeHead(502);
          res.end();
        });
        upstream.end(body);
      })();
    });

  const issuerFront = front('issuer');
  const mtlsFront = front('mtls');
  const fronts = [issuerFront, mtlsFront].map((s) => ({ server: s, sockets: trackSockets(s) }));
  const [issuerPort, mtlsPort] = await Promise.all([listen(issuerFront, 0), listen(mtlsFront, 0)]);
  const issuer = `https://localhost:${issuerPort}`;
  const mtlsTokenUrl = `https://localhost:${mtlsPort}/token`;

  const provider = new Provider(issuer, {
    clients: clients.map((c) => ({ grant_types: ['client_credentials'], response_types: [], redirect_uris: [], scope: SCOPES, tls_client_certificate_bound_access_tokens: true, ...c })),
    jwks: { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: 'as-1', use: 'sig', alg: 'RS256' }] },
    clientAuthMethods: ['tls_client_auth', 'self_signed_tls_client_auth', 'private_key_jwt', 'client_secret_basic', 'client_secret_post'],
    // 'admin' exists but no client may ask for it: requesting it is invalid_scope.
    scopes: [...SCOPES.split(' '), 'admin'],
    ttl: { ClientCredentials: () => state.accessTokenTtl },
    discovery: { mtls_endpoint_aliases: { token_endpoint: mtlsTokenUrl } },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      mTLS: {
        enabled: true,
        certificateBoundAccessTokens: true,
        tlsClientAuth: true,
        selfSignedTlsClientAuth: true,
        getCertificate: (ctx: ProviderContext) => (ctx.get('x-ssl-client-cert') ? decodeURIComponent(ctx.get('x-ssl-client-cert')) : undefined),
        certificateAuthorized: (ctx: ProviderContext) => ctx.get('x-ssl-client-verify') === 'SUCCESS',
        certificateSubjectMatches: (ctx: ProviderContext, property: string, expected: string) => property === 'tls_client_auth_subject_dn' && ctx.get('x-ssl-client-s-dn') === expected,
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({ scope: SCOPES, audience: RESOURCE, accessTokenTTL: state.accessTokenTtl, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } }),
      },
    },
  });
  provider.proxy = true;
  providerServer.on('request', provider.callback());

  Object.assign(state, {
    issuer,
    otherSpelling: `https://127.0.0.1:${issuerPort}`,
    mtlsTokenUrl,
    plainTokenUrl: `${issuer}/token`,
    tokenRequests: [],
    discoveryRequests: 0,
    secretsSeen: [],
    unavailable: 0,
    forwardCertificate: undefined,
    resource,
    accessTokenTtl: o.accessTokenTtl ?? 300,
    close: async () => {
      await Promise.all([...fronts.map((f) => closeServer(f.server, f.sockets.sockets)), closeServer(providerServer, providerSockets.sockets), resource.close()]);
    },
  } satisfies AuthorizationServer);
  return state;
}
