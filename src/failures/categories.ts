/** The failure categories of the Result contract, with their exit code and phase. */
export const FAILURE_CATEGORIES = {
  server_cert_untrusted: { exitCode: 3, phase: 'tls', summary: 'the server certificate does not chain to a trusted root' },
  server_cert_expired: { exitCode: 3, phase: 'tls', summary: 'the server certificate is expired or not yet valid' },
  server_hostname_mismatch: { exitCode: 3, phase: 'tls', summary: 'the server certificate is not valid for the host name' },
  server_identity_mismatch: { exitCode: 3, phase: 'tls', summary: 'the server certificate fails a key pin or subject pattern' },
  client_cert_rejected: { exitCode: 3, phase: 'tls', summary: 'the backend rejected our client certificate' },
  client_cert_required: { exitCode: 3, phase: 'tls', summary: 'the backend demands a client certificate and the profile has none' },
  client_cert_expired: { exitCode: 3, phase: 'tls', summary: 'our client certificate is expired or not yet valid' },
  protocol_mismatch: { exitCode: 3, phase: 'tls', summary: 'no common TLS version or cipher, or the port does not speak TLS' },
  connect_failed: { exitCode: 5, phase: 'connect', summary: 'the TCP connection or proxy tunnel could not be opened' },
  timeout: { exitCode: 5, phase: 'connect', summary: 'a phase of the call ran out of time' },
  http_status: { exitCode: 4, phase: 'response', summary: 'the HTTP status is not accepted by the node' },
  invalid_input: { exitCode: 2, phase: 'input', summary: 'the definition, profile, bundle or context is invalid' },
  server_cert_revoked: { exitCode: 3, phase: 'tls', summary: 'a certificate of the server chain (leaf or intermediate) is revoked' },
} as const satisfies Record<string, { exitCode: number; phase: FailurePhase; summary: string }>;

export type FailureCategory = keyof typeof FAILURE_CATEGORIES;
/**
 * How far a call got when it failed: `proxy` for anything on the way to or through a proxy,
 * `request` once the request may have reached the backend, `response` once headers arrived.
 */
export type FailurePhase = 'input' | 'connect' | 'proxy' | 'tls' | 'request' | 'response' | 'auth';

export const CATEGORY_NAMES = Object.keys(FAILURE_CATEGORIES) as FailureCategory[];

/** Exit codes of the CLI. */
export const EXIT = { ok: 0, invalidInput: 2, tls: 3, http: 4, network: 5 } as const;

export function exitCodeFor(category: FailureCategory | undefined): number {
  return category === undefined ? EXIT.ok : FAILURE_CATEGORIES[category].exitCode;
}
