import dns, { type LookupAddress, type LookupOptions } from 'node:dns';

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** Callers waiting on one getaddrinfo call, by host name and lookup options. */
const inFlight = new Map<string, LookupCallback[]>();

function keyOf(hostname: string, options: LookupOptions): string {
  return `${hostname}\u0000${options.family ?? 0}\u0000${options.hints ?? 0}\u0000${options.all === true}\u0000${String(options.verbatim ?? '')}\u0000${String((options as { order?: string }).order ?? '')}`;
}

/**
 * `dns.lookup` for svcnode's connections, with concurrent lookups of one name sharing one
 * getaddrinfo call. getaddrinfo cannot be cancelled and runs on libuv's thread pool, where lookups
 * may take half the threads (2 of 4 unless UV_THREADPOOL_SIZE says otherwise); a name the DNS
 * server does not answer holds its thread until the resolver gives up (`options timeout:…
 * attempts:…`, 10 s by default). Before, every call to such a node held a slot of its own: two
 * jobs for one such name held both, and calls to healthy names, /etc/hosts ones included, then
 * timed out in their lookup. Now a name holds one slot however many calls wait on it. Nothing is
 * cached: the next lookup after an answer asks the resolver again, as `dns.lookup` does.
 */
export function sharedLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
  const key = keyOf(hostname, options);
  const waiting = inFlight.get(key);
  if (waiting) {
    waiting.push(callback);
    return;
  }
  const callbacks = [callback];
  inFlight.set(key, callbacks);
  try {
    dns.lookup(hostname, options, (error, address, family) => {
      inFlight.delete(key);
      // Each caller gets its own copy of a list (net keeps and reorders what it is given).
      for (const cb of callbacks) cb(error, Array.isArray(address) ? address.map((a) => ({ ...a })) : address, family);
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
