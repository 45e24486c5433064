/** The oauth2-client-credentials branch of the node schema, and the README's example. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { NodeDefinition } from '../../src/definitions/types.js';
import type { InvalidInputError } from '../../src/errors.js';
import { validateDocument } from '../../src/definitions/validator.js';
import { REPO_ROOT } from '../helpers/cli.js';

const base = { id: 'n', request: { method: 'GET', url: 'https://api.example/x' }, tls: { profile: 'bank' } };
const auth = { type: 'oauth2-client-credentials', tokenUrl: 'https://as.example/token', clientId: 'bot', clientAuth: 'tls_client_auth' };
const check = (a: Record<string, unknown>): unknown => validateDocument<NodeDefinition>('node', { ...base, auth: a }, 'node.json');

describe('node schema: oauth2-client-credentials', () => {
  it('accepts the README example', () => {
    const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
    const section = readme.split('### OAuth 2.0 client credentials over mutual TLS')[1] ?? '';
    const json = /```json\n([^]*?)```/.exec(section)?.[1] ?? '';
    const node = validateDocument<NodeDefinition>('node', JSON.parse(json), 'README.md');
    expect(node.auth?.type).toBe('oauth2-client-credentials');
  });

  it('accepts every client authentication method with its own fields', () => {
    for (const clientAuth of ['tls_client_auth', 'self_signed_tls_client_auth', 'private_key_jwt']) expect(check({ ...auth, clientAuth })).toBeTruthy();
    for (const clientAuth of ['client_secret_basic', 'client_secret_post']) {
      expect(check({ ...auth, clientAuth, clientSecret: { env: 'BANK_CLIENT_SECRET' } })).toBeTruthy();
      expect(check({ ...auth, clientAuth, clientSecret: { file: '/run/secrets/bank' } })).toBeTruthy();
    }
    expect(check({ ...auth, tokenUrl: undefined, issuer: 'https://as.example', scope: 'accounts payments', params: { audience: 'https://api.example' } })).toBeTruthy();
  });

  it.each([
    ['an inline client secret', { ...auth, clientAuth: 'client_secret_basic', clientSecret: 's3cret' }],
    ['a secret source with a value', { ...auth, clientAuth: 'client_secret_post', clientSecret: { value: 's3cret' } }],
    ['client_secret_* without clientSecret', { ...auth, clientAuth: 'client_secret_basic' }],
    ['a clientSecret for tls_client_auth', { ...auth, clientSecret: { env: 'X' } }],
    ['both tokenUrl and issuer', { ...auth, issuer: 'https://as.example' }],
    ['neither tokenUrl nor issuer', { ...auth, tokenUrl: undefined }],
    ['an http token endpoint', { ...auth, tokenUrl: 'http://as.example/token' }],
    ['userinfo in the token endpoint', { ...auth, tokenUrl: 'https://bot:pw@as.example/token' }],
    ['a templated token endpoint', { ...auth, tokenUrl: 'https://{{context.host}}/token' }],
    ['an unknown method', { ...auth, clientAuth: 'none' }],
    ['a param that overrides the grant', { ...auth, params: { grant_type: 'password' } }],
    ['a param that smuggles a secret', { ...auth, params: { client_secret: 'x' } }],
  ])('refuses %s', (_what, a) => {
    expect(() => check(a)).toThrow(expect.objectContaining({ code: 'SVCNODE_INVALID_DEFINITION' }));
  });
});

describe('node schema: what the auth refusals say', () => {
  function lines(a: Record<string, unknown>): string[] {
    try {
      check(a);
    } catch (error) {
      return (error as InvalidInputError).message.split('\n').slice(1).map((l) => l.trim());
    }
    throw new Error('the definition was valid');
  }

  it.each([
    ['a clientSecret for tls_client_auth', { ...auth, clientSecret: { env: 'X' } }, '/auth/clientSecret: tls_client_auth authenticates with the client certificate; remove clientSecret or use clientAuth client_secret_basic (or client_secret_post)'],
    ['a clientSecret for private_key_jwt', { ...auth, clientAuth: 'private_key_jwt', clientSecret: { file: '/s' } }, "/auth/clientSecret: private_key_jwt authenticates with a JWT signed by the profile's private key; remove clientSecret or use clientAuth client_secret_basic (or client_secret_post)"],
    ['client_secret_post without clientSecret', { ...auth, clientAuth: 'client_secret_post' }, '/auth/clientSecret: client_secret_post needs a client secret: add clientSecret {"env": "VARIABLE"} or {"file": "PATH"}, or use clientAuth tls_client_auth'],
    ['both tokenUrl and issuer', { ...auth, issuer: 'https://as.example' }, '/auth: needs exactly one of "tokenUrl" (the token endpoint) or "issuer" (whose metadata names the token endpoint), not both'],
    ['neither tokenUrl nor issuer', { ...auth, tokenUrl: undefined }, '/auth: needs exactly one of "tokenUrl" (the token endpoint) or "issuer" (whose metadata names the token endpoint), not both'],
    ['an http token endpoint', { ...auth, tokenUrl: 'http://as.example/token' }, '/auth/tokenUrl: must be https://host[:port][/path] (the authorization server is called over mutual TLS), without templates, user:password@, query or fragment'],
    ['an http issuer', { ...auth, tokenUrl: undefined, issuer: 'http://as.example' }, '/auth/issuer: must be https://host[:port][/path] (the authorization server is called over mutual TLS), without templates, user:password@, query or fragment'],
    ['a misspelt field', { ...auth, scopes: 'accounts' }, '/auth: unknown property "scopes" (check the spelling against the schema)'],
    ['a misspelt type', { ...auth, type: 'oauth2' }, '/auth/type: must be "oauth2-client-credentials"'],
  ])('%s: one line, at the field, saying what to change', (_what, a, line) => {
    expect(lines(a)).toEqual([line]);
  });

  it('a certificate-session node is not told about the OAuth 2.0 fields', () => {
    expect(lines({ type: 'certificate-session', tokens: [{ url: 'http://pod.example/login', header: 'sessionToken' }] })).toEqual([
      '/auth/tokens/0/url: must be https://host[:port]/… with a literal scheme, host and port (templates only in the path and query) and no user:password@ (credentials go in request.headers or auth)',
    ]);
  });

  it('an auth that is not an object is told so, not about tokenUrl and issuer', () => {
    let message = '';
    try {
      validateDocument('node', { ...base, auth: 'tls_client_auth' }, 'node.json');
    } catch (error) {
      message = (error as InvalidInputError).message;
    }
    expect(message).toContain('/auth: must be object');
    expect(message).not.toContain('tokenUrl');
  });

  it('the client secret is never quoted', () => {
    expect(lines({ ...auth, clientAuth: 'client_secret_basic', clientSecret: 'S3cret-inline' }).join('\n')).not.toContain('S3cret-inline');
  });
});
