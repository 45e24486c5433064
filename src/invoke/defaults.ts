/** Every default of a call, in one place. */
export const DEFAULTS = {
  timeouts: {
    /** TCP connect, or the CONNECT tunnel through a proxy (one SYN retransmit fits). @defaultValue 3000 */
    connectMs: 3_000,
    /** TLS handshake after the connection is up. @defaultValue 3000 */
    handshakeMs: 3_000,
    /** From the request being sent to the response headers. @defaultValue 5000 */
    responseMs: 5_000,
    /** Longest pause between two chunks of the response body. @defaultValue 5000 */
    idleMs: 5_000,
    /**
     * Overall deadline of one attempt, body included. A person waits for the answer and the bot
     * platform gives a service node 20 s at most: 3 attempts of 6 s plus backoff end within 19.5 s. @defaultValue 6000
     */
    totalMs: 6_000,
    /**
     * Longest a kept-alive connection stays in the pool unused. Backends close idle connections
     * after their own timeout (Node and Apache 5 s, haproxy often less, nginx 75 s); a call that
     * picks a connection as it closes fails without an answer. Below the shortest common one,
     * as Node's fetch (undici) does; a server's `Keep-Alive: timeout=N` lowers it to N − 1 s. @defaultValue 4000
     */
    keepAliveMs: 4_000,
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
  /** Time budget of `dry-run --tls-only`'s TLS 1.2 probe that reads the CAs a server names. @defaultValue 3000 */
  diagnosticTimeoutMs: 3_000,
  /**
   * `dry-run --tls-only`, TLS 1.3, certificate requested: how long to wait after the handshake for
   * the server's verdict on our certificate (an alert or a close; it arrives one round trip later). @defaultValue 1000
   */
  tlsOnlyVerdictMs: 1_000,
  /** Redirects followed when a node opts in (same origin only). @defaultValue 5 */
  maxRedirects: 5,
} as const;
