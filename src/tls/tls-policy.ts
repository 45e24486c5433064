import { constants } from 'node:crypto';
import { createSecureContext, type SecureContextOptions, type SecureVersion } from 'node:tls';
import { InvalidInputError } from '../errors.js';

/**
 * TLS settings some backends need beyond the minimum version: a protocol ceiling, an OpenSSL
 * cipher list, and connecting to servers without RFC 5746 secure renegotiation.
 */
export interface TlsPolicy {
  /** Highest protocol offered, e.g. `TLSv1.2` for Apache setups that need post-handshake auth. */
  maxVersion?: SecureVersion;
  /** OpenSSL cipher list (TLS 1.2 and below), e.g. `ECDHE-RSA-AES128-GCM-SHA256`. */
  ciphers?: string;
  /** Allow servers that do not support secure renegotiation (SSL_OP_LEGACY_SERVER_CONNECT). */
  legacyServerConnect?: boolean;
}

/** The secure-context options of a policy; an empty policy adds nothing. */
export function policyOptions(policy: TlsPolicy | undefined): SecureContextOptions {
  if (!policy) return {};
  return {
    ...(policy.maxVersion ? { maxVersion: policy.maxVersion } : {}),
    ...(policy.ciphers ? { ciphers: policy.ciphers } : {}),
    ...(policy.legacyServerConnect ? { secureOptions: constants.SSL_OP_LEGACY_SERVER_CONNECT } : {}),
  };
}

/** A stable string of the policy, part of the agent-pool and secure-context keys. */
export function policyKey(policy: TlsPolicy | undefined): string {
  if (!policy || (!policy.maxVersion && !policy.ciphers && !policy.legacyServerConnect)) return '';
  return JSON.stringify([policy.maxVersion ?? null, policy.ciphers ?? null, policy.legacyServerConnect === true]);
}

/**
 * Check at load time that OpenSSL accepts the node's cipher list and that the version range is not
 * empty, so a typo fails the definition instead of every call.
 */
export function checkTlsPolicy(policy: TlsPolicy, minVersion: SecureVersion | undefined, file: string): void {
  if (policy.maxVersion && minVersion && VERSION_ORDER.indexOf(policy.maxVersion) < VERSION_ORDER.indexOf(minVersion)) {
    throw new InvalidInputError('SVCNODE_INVALID_DEFINITION', `${file}: /tls/maxVersion ${policy.maxVersion} is lower than /tls/minVersion ${minVersion}`, {
      file,
      field: '/tls/maxVersion',
      hint: 'raise tls.maxVersion or lower tls.minVersion',
    });
  }
  if (!policy.ciphers) return;
  try {
    createSecureContext({ ciphers: policy.ciphers });
  } catch (cause) {
    throw new InvalidInputError('SVCNODE_INVALID_DEFINITION', `${file}: /tls/ciphers: OpenSSL selects no cipher from "${policy.ciphers}"`, {
      cause,
      file,
      field: '/tls/ciphers',
      hint: 'use an OpenSSL cipher list; `openssl ciphers -v LIST` shows what it selects',
    });
  }
}

const VERSION_ORDER: SecureVersion[] = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];
