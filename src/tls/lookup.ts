import dns, { type LookupAddress, type LookupOptions } from 'node:dns';

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

interface Lookup {
  /** Callers waiting on it. */
  callbacks: LookupCallback[];
  /** performance.now() when its getaddrinfo call started. */
  startedAt: number;
  /** Its name's last lookup did not answer in time: it will likely hold its thread too. */
  suspect: boolean;
}

/** getaddrinfo calls in flight, by host name and lookup options. */
const inFlight = new Map<string, Lookup>();

/** A lookup that takes this long holds its thread as one the DNS server does not answer does (they answer in milliseconds). */
export const UNANSWERED_LOOKUP_MS = 2_000;
/** A name remembered as not answering is looked up again after this long even while another lookup is stuck: it may answer again. */
export const UNANSWERED_RETRY_MS = 30_000;

/**
 * Host names whose last lookup took UNANSWERED_LOOKUP_MS or longer, with when a lookup of each was
 * last started (performance.now()), oldest first, at most `max` of them.
 */
export class UnansweredNames {
  private readonly names = new Map<string, number>();

  constructor(private readonly max = 256) {}

  has(hostname: string): boolean {
    return this.names.has(hostname);
  }

  /**
   * Whether a lookup of `hostname` must not start at `now`: it is remembered, it was last tried
   * less than UNANSWERED_RETRY_MS ago, and `stuck()` says another lookup holds a thread. A lookup
   * it lets start counts as a try.
   */
  refuse(hostname: string, now: number, stuck: () => boolean): boolean {
    const triedAt = this.names.get(hostname);
    if (triedAt === undefined) return false;
    if (now - triedAt < UNANSWERED_RETRY_MS && stuck()) return true;
    this.names.set(hostname, now);
    return false;
  }

  /** A lookup of `hostname` started at `startedAt` ended at `now`: the name is remembered if it took UNANSWERED_LOOKUP_MS or longer, forgotten if not. */
  ended(hostname: string, startedAt: number, now: number): void {
    this.names.delete(hostname);
    if (now - startedAt < UNANSWERED_LOOKUP_MS) return;
    if (this.names.size >= this.max) this.names.delete(this.names.keys().next().value as string);
    this.names.set(hostname, startedAt);
  }

  /** The names remembered, oldest first. */
  list(): string[] {
    return [...this.names.keys()];
  }
}

const unanswered = new UnansweredNames();

function keyOf(hostname: string, options: LookupOptions): string {
  return `${hostname}\u0000${options.family ?? 0}\u0000${options.hints ?? 0}\u0000${options.all === true}\u0000${String(options.verbatim ?? '')}\u0000${String((options as { order?: string }).order ?? '')}`;
}

/** Whether a lookup in flight holds, or is likely to hold, its thread until the resolver gives up. */
function stuckLookup(now: number): boolean {
  for (const lookup of inFlight.values()) if (lookup.suspect || now - lookup.startedAt >= UNANSWERED_LOOKUP_MS) return true;
  return false;
}

/** The error of a lookup not started: as getaddrinfo's own for a resolver that does not answer, with why. */
function notAsked(hostname: string): NodeJS.ErrnoException {
  const error: NodeJS.ErrnoException = new Error(
    `getaddrinfo EAI_AGAIN ${hostname}: not looked up: its last lookup did not answer within ${UNANSWERED_LOOKUP_MS / 1000} s, and another lookup that does not answer holds a thread (lookups have two; the other stays for names that answer)`,
  );
  error.code = 'EAI_AGAIN';
  error.syscall = 'getaddrinfo';
  return error;
}

/**
 * `dns.lookup` for svcnode's connections. getaddrinfo cannot be cancelled and runs on libuv's
 * thread pool, where lookups may take half the threads (2 of 4 unless UV_THREADPOOL_SIZE says
 * otherwise); a name the DNS server does not answer holds its thread until the resolver gives up
 * (`options timeout:… attempts:…`, 10 s by default), and calls to every other name, /etc/hosts ones
 * included, then time out in their lookup.
 * - Concurrent lookups of one name share one getaddrinfo call: a name holds one thread however
 *   many calls wait on it (before, two jobs for one such name held both).
 * - A name whose last lookup took UNANSWERED_LOOKUP_MS or longer is not looked up while another
 *   lookup is stuck (running that long, or of such a name): its calls fail at once with EAI_AGAIN
 *   and a message that says why, so two such names hold one thread, not both. The first lookup of a
 *   name is always made (nothing tells yet that it will not answer), and one every
 *   UNANSWERED_RETRY_MS (it may answer again); a name is forgotten when a lookup of it answers in time.
 * Nothing is cached: the next lookup after an answer asks the resolver again, as `dns.lookup` does.
 */
export function sharedLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
  const key = keyOf(hostname, options);
  const waiting = inFlight.get(key);
  if (waiting) {
    waiting.callbacks.push(callback);
    return;
  }
  const startedAt = performance.now();
  const suspect = unanswered.has(hostname);
  if (suspect && unanswered.refuse(hostname, startedAt, () => stuckLookup(startedAt))) {
    process.nextTick(callback, notAsked(hostname), '');
    return;
  }
  const lookup: Lookup = { callbacks: [callback], startedAt, suspect };
  inFlight.set(key, lookup);
  try {
    dns.lookup(hostname, options, (error, address, family) => {
      inFlight.delete(key);
      unanswered.ended(hostname, startedAt, performance.now());
      // Each caller gets its own copy of a list (net keeps and reorders what it is given).
      for (const cb of lookup.callbacks) cb(error, Array.isArray(address) ? address.map((a) => ({ ...a })) : address, family);
    });
  } catch (error) {
    // Bad arguments throw before any callback: nothing may stay registered and wait for ever.
    inFlight.delete(key);
    throw error;
  }
}

/** Lookups in flight (distinct names and options): for tests. */
export function lookupsInFlight(): number {
  return inFlight.size;
}

/** Host names remembered as not answering their last lookup in time: for tests. */
export function unansweredNames(): string[] {
  return unanswered.list();
}
