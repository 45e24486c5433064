import { constants, randomUUID, sign, type KeyObject } from 'node:crypto';
import { resolve } from 'node:path';
import type { OAuth2ClientCredentialsAuth } from '../definitions/types.js';
import { InvalidInputError } from '../errors.js';
import { NotReadableAsFile, readRegularFileSync } from '../regular-file.js';
import type { LoadedProfile } from '../pki/types.js';

/** The form and headers of a client-credentials token request, ready to POST. */
export interface TokenRequestParts {
  form: URLSearchParams;
  headers: Record<string, string>;
}

/** Lifetime of a private_key_jwt client assertion (RFC 7523 §3: short, single use). */
const ASSERTION_LIFETIME_SECONDS = 60;

/** A client secret from `{"env"}` or `{"file"}`; never inline in the definition. */
export function readClientSecret(auth: OAuth2ClientCredentialsAuth, env: NodeJS.ProcessEnv = process.env): string {
  const source = auth.clientSecret;
  const field = '/auth/clientSecret';
  if (!source) throw new InvalidInputError('SVCNODE_CLIENT_SECRET_MISSING', `auth.clientAuth "${auth.clientAuth}" needs auth.clientSecret`, { field, hint: 'set auth.clientSecret to {"env": "NAME"} or {"file": "PATH"}' });
  if ('env' in source) {
    const value = env[source.env];
    if (value === undefined || value === '') {
      throw new InvalidInputError('SVCNODE_CLIENT_SECRET_MISSING', `environment variable ${source.env} (auth.clientSecret) is unset or empty`, { field, hint: `export ${source.env} in the worker's environment` });
    }
    return value;
  }
  const file = resolve(source.file);
  try {
    const value = readRegularFileSync(file).toString('utf8').replace(/\r?\n$/, '');
    if (value === '') throw new Error('empty');
    return value;
  } catch (cause) {
    throw new InvalidInputError('SVCNODE_CLIENT_SECRET_MISSING', `client secret file ${file} (auth.clientSecret) cannot be read or is empty${cause instanceof NotReadableAsFile ? `: it ${cause.message}` : ''}`, { cause, file, field, hint: 'check the path (relative paths resolve against the working directory) and its permissions' });
  }
}

const b64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');

/** The JWS algorithm of a key and how to sign with it (RFC 7518). */
function signer(key: KeyObject): { alg: string; sign(data: Buffer): Buffer } {
  const type = key.asymmetricKeyType;
  if (type === 'rsa') return { alg: 'RS256', sign: (d) => sign('sha256', d, key) };
  if (type === 'rsa-pss') return { alg: 'PS256', sign: (d) => sign('sha256', d, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }) };
  if (type === 'ed25519') return { alg: 'EdDSA', sign: (d) => sign(null, d, key) };
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    const [alg, hash] = curve === 'secp384r1' ? ['ES384', 'sha384'] : curve === 'secp521r1' ? ['ES512', 'sha512'] : ['ES256', 'sha256'];
    return { alg, sign: (d) => sign(hash, d, { key, dsaEncoding: 'ieee-p1363' }) };
  }
  throw new InvalidInputError('SVCNODE_INVALID_PROFILE', `private_key_jwt cannot sign with a ${type ?? 'unknown'} key`, { hint: 'use an RSA, EC or Ed25519 client key' });
}

/** An RFC 7523 client assertion signed with the profile's private key, addressed to the token endpoint. */
export function clientAssertion(profile: LoadedProfile, clientId: string, audience: string, now: Date): string {
  const key = profile.client?.key;
  if (!key) throw new InvalidInputError('SVCNODE_AUTH_NO_CLIENT_CERT', `private_key_jwt needs a client key in profile "${profile.name}"`, { file: profile.file });
  const s = signer(key);
  const iat = Math.floor(now.getTime() / 1000);
  const header = b64url(JSON.stringify({ alg: s.alg, typ: 'JWT' }));
  const payload = b64url(JSON.stringify({ iss: clientId, sub: clientId, aud: audience, jti: randomUUID(), iat, exp: iat + ASSERTION_LIFETIME_SECONDS }));
  const input = `${header}.${payload}`;
  return `${input}.${b64url(s.sign(Buffer.from(input)))}`;
}

/** RFC 6749 §2.3.1: the id and secret are form-encoded before they are joined for Basic. */
const formEncode = (value: string): string => encodeURIComponent(value).replace(/%20/g, '+');

/** The grant, scope, extra parameters and client authentication of one token request. */
export function tokenRequestParts(auth: OAuth2ClientCredentialsAuth, profile: LoadedProfile, tokenEndpoint: string, now: Date): TokenRequestParts {
  const form = new URLSearchParams({ grant_type: 'client_credentials' });
  if (auth.scope) form.set('scope', auth.scope);
  for (const [name, value] of Object.entries(auth.params ?? {})) form.set(name, value);
  const headers: Record<string, string> = { accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' };
  switch (auth.clientAuth) {
    case 'client_secret_basic':
      headers.authorization = `Basic ${Buffer.from(`${formEncode(auth.clientId)}:${formEncode(readClientSecret(auth))}`).toString('base64')}`;
      break;
    case 'client_secret_post':
      form.set('client_id', auth.clientId);
      form.set('client_secret', readClientSecret(auth));
      break;
    case 'private_key_jwt':
      form.set('client_id', auth.clientId);
      form.set('client_assertion_type', 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
      form.set('client_assertion', clientAssertion(profile, auth.clientId, tokenEndpoint, now));
      break;
    default:
      // tls_client_auth and self_signed_tls_client_auth: the certificate is the credential (RFC 8705 §2).
      form.set('client_id', auth.clientId);
  }
  return { form, headers };
}
