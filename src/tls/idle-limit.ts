/**
 * How long a pooled connection may wait unused before svcnode closes it: the node's
 * `timeouts.keepAliveMs`, 1 s less than the server's `Keep-Alive: timeout=N`, and less than what
 * the backend was seen to allow. Many backends close idle connections sooner than 4 s without
 * saying so (gunicorn 2 s, a load balancer's short `http-keep-alive`): a request sent on such a
 * connection as it closes gets no answer, and a POST cannot be sent again. So every close by the
 * backend of a connection it had left idle teaches this agent's limit (see observe).
 */

/** Close this long before a server's announced `Keep-Alive: timeout=N`, as node:http does. */
export const HINT_MARGIN_MS = 1_000;
/**
 * Quicker closes teach nothing: a backend closing right after its answer (a request limit per
 * connection) or a restart closing all of its connections at once is not an idle timeout.
 */
export const MIN_LEARNED_IDLE_MS = 1_000;
/** A learned limit is this share of the idle time the backend allowed: room for timers and the network. */
export const LEARNED_SHARE = 0.75;
/** A learned limit holds this long after the close that taught it, then the configured one returns. */
export const LEARNED_TTL_MS = 10 * 60_000;

/** What an agent learned: told once per change (the worker logs it). */
export interface IdleLearned {
  /** How long the connection had been idle when the backend closed it (or closed it under a request). */
  idleMs: number;
  /** The limit now used for this agent's connections. */
  limitMs: number;
  /** timeouts.keepAliveMs of the node. */
  configuredMs: number;
}

export class IdleLimit {
  private learnedMs: number | undefined;
  private learnedAt = 0;

  constructor(
    readonly configuredMs: number,
    private readonly onLearned?: (learned: IdleLearned) => void,
    private readonly now: () => number = performance.now.bind(performance),
  ) {}

  /** The idle limit of a connection whose server announced `hintMs` (its Keep-Alive timeout), if any. */
  limit(hintMs?: number): number {
    const configured = hintMs === undefined ? this.configuredMs : Math.min(this.configuredMs, hintMs - HINT_MARGIN_MS);
    if (this.learnedMs === undefined) return configured;
    if (this.now() - this.learnedAt > LEARNED_TTL_MS) {
      this.learnedMs = undefined;
      return configured;
    }
    return Math.min(configured, this.learnedMs);
  }

  /** The backend closed a connection of this agent after it had been idle `idleMs` (in the pool, or until a request was sent on it). */
  observe(idleMs: number): void {
    if (!(idleMs >= MIN_LEARNED_IDLE_MS)) return;
    const idle = Math.round(idleMs);
    const learned = Math.floor(idle * LEARNED_SHARE);
    const current = this.limit();
    if (learned >= current && this.learnedMs === undefined) return;
    this.learnedAt = this.now();
    if (learned >= current) return;
    this.learnedMs = learned;
    this.onLearned?.({ idleMs: idle, limitMs: learned, configuredMs: this.configuredMs });
  }
}
