/** Every default of a call, in one place. */
export const DEFAULTS = {
  timeouts: {
    /** TCP connect, or the CONNECT tunnel through a proxy. @defaultValue 5000 */
    connectMs: 5_000,
    /** TLS handshake after the connection is up. @defaultValue 10000 */
    handshakeMs: 10_000,
    /** From the request being sent to the response headers. @defaultValue 30000 */
    responseMs: 30_000,
    /** Longest pause between two chunks of the response body. @defaultValue 30000 */
    idleMs: 30_000,
    /** Overall deadline of one attempt, body included. @defaultValue 60000 */
    totalMs: 60_000,
  },
  retry: {
    /** Retries after the first attempt, for transient failures only. @defaultValue 2 */
    limit: 2,
    /** Cap of the first backoff; doubles per retry, and the delay is drawn uniformly below the cap (full jitter). @defaultValue 500 */
    backoffMs: 500,
    /** Largest delay, also for a server's Retry-After. @defaultValue 10000 */
    maxBackoffMs: 10_000,
    /** Retry POST/PATCH even when the request may have reached the backend. @defaultValue false */
    nonIdempotent: false,
  },
  response: {
    /** @defaultValue ['2xx'] */
    acceptStatus: ['2xx'] as (number | string)[],
    /** Larger bodies are cut and marked `truncated`. @defaultValue 1 MiB */
    maxBodyBytes: 1_048_576,
    /** Body bytes (as JSON) a worker stores in a Result; dry-run shows the whole body. @defaultValue 32 KiB */
    maxStoredBodyBytes: 32_768,
  },
  /** Redirects followed when a node opts in (same origin only). @defaultValue 5 */
  maxRedirects: 5,
} as const;
