import { SvcnodeError } from '../errors.js';
import { failureOf as failure, type Failure } from './failure.js';
import { REVOCATION_UNKNOWN } from './revocation-failure.js';

/**
 * The Failure of an OCSP staple verdict that failed the handshake (src/tls/ocsp-stapling.ts).
 * No current status is the same code as a stale CRL in hard mode; unusable staples are untrusted.
 */
export function ocspFailure(error: unknown): Failure | undefined {
  if (!(error instanceof SvcnodeError)) return undefined;
  const hint = error.hint ?? 'check the OCSP stapling configuration of the backend';
  switch (error.code) {
    case 'SVCNODE_OCSP_REVOKED':
      return failure('server_cert_revoked', error.code, error.message, hint);
    case 'SVCNODE_OCSP_NO_STATUS':
      return failure('server_cert_untrusted', REVOCATION_UNKNOWN, error.message, hint);
    case 'SVCNODE_OCSP_STAPLE_INVALID':
    case 'SVCNODE_OCSP_STAPLE_MISMATCH':
      return failure('server_cert_untrusted', error.code, error.message, hint);
    default:
      return undefined;
  }
}
