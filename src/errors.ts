/**
 * The error family of svcnode. Every error carries a stable `code` (ours, `SVCNODE_*`); the raw
 * Node/OpenSSL error stays available as `cause` and never overwrites ours.
 */
/** Every svcnode error code with what it means; the README's table is kept in sync by a test. */
export const ERROR_CODES = {
  SVCNODE_INVALID_DEFINITION: 'a node definition, invocation or context file is not valid JSON or breaks its schema',
  SVCNODE_INVALID_PROFILE: 'a certificate profile is not valid JSON, breaks its schema or is misnamed',
  SVCNODE_INVALID_BUNDLE: 'a certificate, key or PKCS#12 file is corrupt, truncated or of the wrong kind',
  SVCNODE_BAD_PASSPHRASE: 'the passphrase does not open the key or PKCS#12 file',
  SVCNODE_MISSING_PASSPHRASE: 'the key is encrypted and no passphrase is configured, or its variable is unset',
  SVCNODE_KEY_MISMATCH: 'the private key does not belong to the client certificate',
  SVCNODE_NO_CERTIFICATE: 'a file that must hold a certificate holds none',
  SVCNODE_NO_PRIVATE_KEY: 'a file that must hold the private key holds none',
  SVCNODE_WEAK_KEY: 'the RSA client key is shorter than 2048 bits or than policy.minKeyBits',
  SVCNODE_CHAIN_BROKEN: 'the client certificate file holds certificates that do not link to the client certificate',
  SVCNODE_BUNDLE_TOO_LARGE: 'a bundle file is larger than 1 MiB',
  SVCNODE_FILE_NOT_FOUND: 'a file or directory cannot be read',
  SVCNODE_TEMPLATE: 'a {{context.…}} template is unsupported, its variable is missing, or the rendered value is unsafe',
  SVCNODE_UNKNOWN_NODE: 'no valid node definition has this id',
  SVCNODE_UNKNOWN_PROFILE: 'the profile a node names does not exist',
  SVCNODE_PROFILE_REMOVED: 'the profile file was removed while the worker ran; its nodes answer invalid_input until it is back',
  SVCNODE_NODE_REMOVED: 'the node definition file was removed while the worker ran; its jobs answer invalid_input until it is back',
  SVCNODE_USAGE: 'the command line is invalid',
  SVCNODE_PIN_MISMATCH: 'the server public key matches none of tls.pinnedPublicKeys',
  SVCNODE_SUBJECT_MISMATCH: 'the server subject matches none of tls.serverSubjectPatterns',
  SVCNODE_CLIENT_CERT_EXPIRED: 'the client certificate is expired, so it was not presented',
  SVCNODE_CLIENT_CERT_NOT_YET_VALID: 'the client certificate is not valid yet, so it was not presented',
  SVCNODE_RENEWAL_OUT_OF_DATE: 'a profile reloaded while the worker runs holds a client certificate that is expired (refused: the last good one stays in use, the profile is stale) or not valid yet (a renewal staged early: logged, and taken when it becomes valid)',
  SVCNODE_CROSS_ORIGIN_REDIRECT: 'the backend redirected to another origin, which is never followed',
  SVCNODE_TIMEOUT: 'a TCP connect or TLS handshake did not finish within its timeout',
  SVCNODE_NODE_SATURATED: 'the job was not sent: calls to its node were timing out and held the node\'s share of the worker\'s slots while the job waited 5 minutes',
  SVCNODE_AUTH_NO_TOKEN: 'a certificate-session endpoint answered without the token field',
  SVCNODE_AUTH_NO_CLIENT_CERT: 'certificate-session or OAuth 2.0 authentication needs a profile with a client certificate',
  SVCNODE_TOKEN_REJECTED: 'the token endpoint refused our client authentication (invalid_client): register the certificate or fix the client id',
  SVCNODE_TOKEN_INVALID_SCOPE: 'the token endpoint refused the requested scope (invalid_scope)',
  SVCNODE_TOKEN_UNAUTHORIZED_CLIENT: 'the client may not use the client_credentials grant (unauthorized_client)',
  SVCNODE_TOKEN_REQUEST_REFUSED: 'the token endpoint refused the token request for another OAuth 2.0 reason',
  SVCNODE_TOKEN_ENDPOINT_UNAVAILABLE: 'the token endpoint answered 5xx or 429; the call is retried within its retry.limit',
  SVCNODE_TOKEN_BAD_RESPONSE: 'the token endpoint answered without a usable access_token',
  SVCNODE_TOKEN_BINDING_MISMATCH: 'the access token is bound (cnf.x5t#S256) to another certificate than ours; it was not used',
  SVCNODE_CLIENT_SECRET_MISSING: 'the client secret variable is unset or its file cannot be read',
  SVCNODE_DISCOVERY_FAILED: 'the authorization server metadata cannot be fetched or has no https token endpoint',
  SVCNODE_ISSUER_MISMATCH: 'the authorization server metadata names another issuer than auth.issuer',
  SVCNODE_REDIS_UNAVAILABLE: 'Redis cannot be reached',
  SVCNODE_INVALID_REQUEST: 'the HTTP layer refused a rendered header value or URL (control characters, lone surrogates)',
  SVCNODE_TOO_MANY_REDIRECTS: 'the backend redirected more often than the redirect limit (a redirect loop); not retried',
  SVCNODE_BAD_REDIRECT: 'a redirect (followRedirects) whose Location header is not a URL; not retried',
  SVCNODE_BAD_RESPONSE: 'the backend answered with something that is not valid HTTP/1.1 (another protocol on this port, a malformed status line or header); not retried',
  SVCNODE_DECODE_FAILED: 'the response body does not decode per its Content-Encoding (corrupt gzip, deflate or br); not retried',
  SVCNODE_UNSUPPORTED_ENCODING: 'the response uses a Content-Encoding other than gzip, deflate, br or identity, or stacks more than five; not retried',
  SVCNODE_RESPONSE_TIMEOUT: 'the response headers did not arrive within timeouts.responseMs after the request was sent',
  SVCNODE_IDLE_TIMEOUT: 'the response body paused longer than timeouts.idleMs between chunks',
  SVCNODE_DEADLINE: 'the attempt did not finish within timeouts.totalMs',
  SVCNODE_ABORTED: 'the call was cancelled (job cancelled or worker shutting down)',
  SVCNODE_CONNECTION_CLOSED: 'the connection closed before the response ended',
  SVCNODE_NETWORK: 'a TLS or network error of the connection to the backend (the raw code is the failure code)',
  SVCNODE_UNEXPECTED_ERROR: 'an error the transport does not know; it is logged with its raw code and not retried',
  SVCNODE_PROXY_UNREACHABLE: 'the proxy in proxy.url cannot be reached, or closed the connection without answering CONNECT (what a TLS port does with an `http://` proxy.url)',
  SVCNODE_PROXY_BAD_RESPONSE: 'what listens at proxy.url answered CONNECT with something that is not HTTP (not a proxy port); not retried',
  SVCNODE_PROXY_TLS: 'the TLS handshake with an https:// proxy failed: its certificate is not trusted by proxy.tls.ca, out of date or for another host, or the port does not speak TLS (most proxies take CONNECT in plaintext: `http://`); not retried',
  SVCNODE_PROXY_AUTH: 'the proxy answered 407 to the user and password in proxy.url: they are wrong, or the account is locked',
  SVCNODE_PROXY_AUTH_REQUIRED: 'the proxy answered 407 and proxy.url has no credentials',
  SVCNODE_PROXY_AUTH_SCHEME: 'the proxy answered 407 offering only schemes svcnode does not speak (NTLM, Negotiate/Kerberos, Digest); svcnode supports Basic proxy authentication only',
  SVCNODE_PROXY_REFUSED: 'the proxy refused to open the tunnel (its HTTP status is in the message)',
  SVCNODE_PROXY_TIMEOUT: 'the proxy did not open the tunnel within timeouts.connectMs; the message says how far it got (its name not looked up, its port not taking the connection, or CONNECT sent and not answered: a working proxy still trying the backend)',
  SVCNODE_BROKEN_RECORD: 'a failure record in Redis is not JSON or lacks fields; `svcnode failures` shows it as broken',
  SVCNODE_KEYLOG_FILE: 'the --keylog file cannot be opened, or others could read it',
  SVCNODE_INVALID_CRL: 'a trust.crl entry is not a CRL, or no trust.ca certificate issued it',
  SVCNODE_CRL_UNAVAILABLE: 'a trust.crl URL gives no usable CRL (unreachable, or its answer is not a CRL of trust.ca) and no earlier copy is known',
  SVCNODE_CERT_REVOKED: 'a server certificate is listed in a current CRL of the profile (soft revocation mode, or CRL distribution points)',
  SVCNODE_REVOCATION_UNKNOWN: 'hard revocation mode with CRL distribution points: no current CRL covers a server certificate (a Result then carries failure.code server_cert_revocation_unknown, not this code)',
  SVCNODE_OCSP_REVOKED: 'the OCSP response the server stapled says its certificate is revoked (failure category server_cert_revoked)',
  SVCNODE_OCSP_NO_STATUS: 'hard revocation mode and no current OCSP status: no staple under stapled-required, a stale staple, or status unknown (failure code server_cert_revocation_unknown)',
  SVCNODE_OCSP_STAPLE_INVALID: 'the stapled OCSP response is malformed, unsuccessful, or not signed by the issuer or its delegated OCSP responder',
  SVCNODE_OCSP_STAPLE_MISMATCH: 'the stapled OCSP response is about another certificate (serial or issuer differs)',
  SVCNODE_REDIS_AUTH: 'Redis refused the credentials (NOAUTH, WRONGPASS)',
  SVCNODE_REDIS_WRONG_NODE: 'the Redis URL names one node of a Redis Cluster that does not own the queue (MOVED)',
  SVCNODE_REDIS_DB: 'the Redis URL selects a database number the server does not have',
  SVCNODE_REDIS_CROSSSLOT: 'the queue prefix has no hash tag, so its keys span Redis Cluster slots (CROSSSLOT)',
  SVCNODE_REDIS_OOM: 'Redis refuses writes: it has reached its maxmemory (OOM)',
  SVCNODE_REDIS_MISCONF: 'Redis refuses writes: it cannot save its snapshot to disk (MISCONF)',
  SVCNODE_REDIS_READONLY: 'the Redis URL names a read-only replica, which refuses writes (READONLY)',
  SVCNODE_REDIS_NOPERM: "the Redis user's ACL does not allow the queue's commands or keys (NOPERM)",
  SVCNODE_REDIS_NOREPLICAS: 'Redis refuses writes: fewer replicas are in sync than its min-replicas-to-write asks (NOREPLICAS)',
  SVCNODE_REDIS_BUSY: 'Redis answers only BUSY: a Lua script or function runs too long',
  SVCNODE_REDIS_TRYAGAIN: "the queue's Redis Cluster slot is migrating between nodes: the queue's scripts are refused (TRYAGAIN) until the migration completes or is undone",
  SVCNODE_REDIS_FAILOVER: 'a failover is under way: the node a blocking command waited on became a replica (UNBLOCKED); the worker follows the new master by itself',
  SVCNODE_REDIS_MAXCLIENTS: 'Redis refuses new connections: it has reached its maxclients',
  SVCNODE_REDIS_TLS_MISMATCH: 'the Redis URL scheme does not match the port: rediss:// on a plain port, or redis:// on a TLS port',
  SVCNODE_REDIS_REDIRECTS: "the Redis Cluster kept redirecting a command (MOVED, ASK, TRYAGAIN) beyond the connection's budget: the queue's slot was migrating or failing over",
  SVCNODE_REDIS_CLUSTER_DOWN: 'the Redis Cluster nodes answer but report cluster_state:fail: some slots have no working master',
  SVCNODE_REDIS_NOT_CLUSTER: 'the Redis URL is a cluster URL (redis+cluster://) but the server has cluster support disabled',
  SVCNODE_PORT_IN_USE: 'the --metrics-port is taken by another process',
  SVCNODE_CLIENT_CLOSED: 'a ServiceNodeClient call came after close(), or close() ended a wait for a Result (the job itself still runs)',
  SVCNODE_JOB_NOT_FOUND: 'ServiceNodeClient.result() names a job that is not in the queue (never enqueued, or removed after completion)',
  SVCNODE_JOB_FAILED: 'the job failed in BullMQ\'s sense (it stalled too often, or a worker could not store its Result): no Result exists',
  SVCNODE_JOB_KEY_LOST: 'the job is gone from Redis while a worker ran it (a failover dropped writes not yet replicated): the backend was called, its Result could not be stored',
  SVCNODE_AGENTS_EVICTED: 'logged (at most every 10 min) when the worker dropped a keep-alive agent with connections to stay within maxAgents: more (profile, backend) pairs carry traffic than it keeps agents for, and calls pay full handshakes',
  SVCNODE_INVALID_OPTION: 'a library call got an option outside its range (e.g. timeoutMs not a whole number from 1 to 2147483647)',
  SVCNODE_INTERNAL_ERROR: 'a command met an error it did not expect (exit 1); `--json` prints it as {"error": …}',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface SvcnodeErrorOptions {
  cause?: unknown;
  /** What the operator should do about it. */
  hint?: string;
  /** The file the problem was found in. */
  file?: string;
  /** JSON pointer or dotted name of the offending field. */
  field?: string;
}

/** Base class: a stable code, the file or field it concerns, and a hint. */
export class SvcnodeError extends Error {
  override readonly name: string = 'SvcnodeError';
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly file: string | undefined;
  readonly field: string | undefined;

  constructor(code: ErrorCode, message: string, options: SvcnodeErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options.hint;
    this.file = options.file;
    this.field = options.field;
  }
}

/**
 * Bad input: a definition, profile, bundle, passphrase, template or command line that cannot be
 * used. The CLI maps it to exit code 2; the worker turns it into an `invalid_input` Result.
 */
export class InvalidInputError extends SvcnodeError {
  override readonly name: string = 'InvalidInputError';
}

/** A certificate bundle that cannot be loaded (corrupt, wrong passphrase, key mismatch, …). */
export class BundleError extends InvalidInputError {
  override readonly name: string = 'BundleError';
}

/** Server identity checks beyond the hostname (pins, subject patterns) that failed. */
export class IdentityError extends SvcnodeError {
  override readonly name: string = 'IdentityError';
}

/**
 * A failure of the connection or exchange with the backend. `phase` says how far the call got;
 * the raw Node/OpenSSL error is the `cause`.
 */
export class TransportError extends SvcnodeError {
  override readonly name: string = 'TransportError';
  readonly phase: 'connect' | 'tls' | 'request' | 'response' | undefined;

  constructor(code: ErrorCode, message: string, options: SvcnodeErrorOptions & { phase?: TransportError['phase'] } = {}) {
    super(code, message, options);
    this.phase = options.phase;
  }
}

/** A failure on the hop to the proxy: never a backend certificate problem. */
export class ProxyError extends SvcnodeError {
  override readonly name: string = 'ProxyError';
  /** The proxy's answer to CONNECT, when it answered. */
  readonly status: number | undefined;

  constructor(code: ErrorCode, message: string, options: SvcnodeErrorOptions & { status?: number } = {}) {
    super(code, message, options);
    this.status = options.status;
  }
}

/** A service svcnode depends on (Redis) cannot be reached; the CLI exits 5 (network failure). */
export class UnavailableError extends SvcnodeError {
  override readonly name: string = 'UnavailableError';
}

/** Narrow an unknown thrown value to an object with an optional string `code`. */
export function errorCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code = error.code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

/** The message of any thrown value. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
