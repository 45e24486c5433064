/** sharedLookup: concurrent lookups of one name and options share one getaddrinfo (real lookups of localhost). */
import dns, { type LookupAddress } from 'node:dns';
import { describe, expect, it } from 'vitest';
import { UNANSWERED_LOOKUP_MS, UNANSWERED_RETRY_MS, UnansweredNames, lookupsInFlight, sharedLookup } from '../../src/tls/lookup.js';

function lookup(hostname: string, options: dns.LookupOptions): Promise<{ address: string | LookupAddress[]; family: number | undefined }> {
  return new Promise((resolve, reject) => sharedLookup(hostname, options, (error, address, family) => (error ? reject(error) : resolve({ address, family }))));
}

describe('sharedLookup', () => {
  it('answers concurrent callers of one name and options from one lookup, each with its own copy, as dns.lookup would', async () => {
    const expected = await dns.promises.lookup('localhost', { all: true });
    const calls = Array.from({ length: 5 }, () => lookup('localhost', { all: true, hints: dns.ADDRCONFIG }));
    // Other options are another lookup.
    const single = lookup('localhost', { family: 4 });
    expect(lookupsInFlight()).toBe(2);
    const answers = await Promise.all(calls);
    for (const { address } of answers) expect(address).toEqual(expected);
    expect(answers[0]?.address).not.toBe(answers[1]?.address);
    expect(await single).toEqual({ address: '127.0.0.1', family: 4 });
    expect(lookupsInFlight()).toBe(0);
  });

  it('passes an error to every caller and keeps nothing', async () => {
    const failed = await Promise.allSettled([lookup('no-such-name.invalid', {}), lookup('no-such-name.invalid', {})]);
    for (const r of failed) expect(r).toMatchObject({ status: 'rejected', reason: { code: 'ENOTFOUND' } });
    expect(lookupsInFlight()).toBe(0);
  });

  it('gives arguments dns.lookup refuses to every caller as an error, and leaves nothing waiting', async () => {
    await expect(lookup('localhost', { family: 5 })).rejects.toThrow(/family/);
    expect(lookupsInFlight()).toBe(0);
    // The same arguments again fail too, instead of joining a lookup that never answers.
    await expect(lookup('localhost', { family: 5 })).rejects.toThrow(/family/);
  });
});

describe('UnansweredNames', () => {
  const stuck = () => true;
  const free = () => false;

  it('remembers a name whose lookup took 2 s or longer, and forgets it when a lookup of it answers sooner', () => {
    const names = new UnansweredNames();
    names.ended('quick', 0, UNANSWERED_LOOKUP_MS - 1);
    names.ended('hung', 0, UNANSWERED_LOOKUP_MS);
    expect(names.list()).toEqual(['hung']);
    names.ended('hung', 10_000, 10_050);
    expect(names.list()).toEqual([]);
  });

  it('refuses a remembered name only while another lookup is stuck, and lets it be tried once every 30 s', () => {
    const names = new UnansweredNames();
    expect(names.refuse('fresh', 0, stuck)).toBe(false);
    names.ended('hung', 0, 4_000);
    expect(names.refuse('hung', 4_100, free)).toBe(false);
    // That lookup counts as a try: refused while stuck until 30 s after it.
    expect(names.refuse('hung', 4_200, stuck)).toBe(true);
    expect(names.refuse('hung', 4_099 + UNANSWERED_RETRY_MS, stuck)).toBe(true);
    expect(names.refuse('hung', 4_100 + UNANSWERED_RETRY_MS, stuck)).toBe(false);
    expect(names.refuse('hung', 4_200 + UNANSWERED_RETRY_MS, stuck)).toBe(true);
  });

  it('keeps at most its limit, the oldest going first', () => {
    const names = new UnansweredNames(2);
    for (const [i, name] of ['a', 'b', 'c'].entries()) names.ended(name, i, i + UNANSWERED_LOOKUP_MS);
    expect(names.list()).toEqual(['b', 'c']);
  });
});
