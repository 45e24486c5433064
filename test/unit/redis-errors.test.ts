import { describe, expect, it } from 'vitest';
import { commandRefusal, knownRedisError } from '../../src/queue/redis-errors.js';

/** ioredis's Cluster error once its redirections run out, carrying the node's last reply. */
function redirectionsRanOut(last: string): Error {
  return Object.assign(new Error(`Too many Cluster redirections. Last error: ReplyError: ${last}`), { lastNodeError: new Error(last) });
}

describe('Redis replies met in a Redis Cluster reshard or failover', () => {
  it('TRYAGAIN is a migrating slot, and redirections run out on TRYAGAIN or ASK a cluster that kept redirecting: both refused commands with their hints', () => {
    const tryAgain = new Error('TRYAGAIN Multiple keys request during rehashing of slot');
    expect(knownRedisError(tryAgain)?.hint).toMatch(/^the queue's slot is migrating between cluster nodes; jobs wait until it completes/);
    expect(commandRefusal(tryAgain)?.code).toBe('SVCNODE_REDIS_TRYAGAIN');
    for (const error of [redirectionsRanOut('TRYAGAIN Multiple keys request during rehashing of slot'), new Error('Too many Cluster redirections. Last error: ReplyError: ASK 5295 127.0.0.1:47702')]) {
      expect(knownRedisError(error)?.hint, error.message).toContain('look for a slot left open with redis-cli --cluster check');
      expect(commandRefusal(error)?.code, error.message).toBe('SVCNODE_REDIS_REDIRECTS');
    }
  });

  it("UNBLOCKED, a failover's demotion of the node a blocking command waited on, is a failover under way, not a refusal", () => {
    const error = new Error('UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)');
    const known = knownRedisError(error);
    expect(known?.code).toBe('SVCNODE_REDIS_FAILOVER');
    expect(known?.hint).toMatch(/normal trace of a failover/);
    expect(commandRefusal(error)).toBeUndefined();
  });

  it('a MOVED after redirections ran out is not taken for a migration; a single MOVED still names the wrong node', () => {
    expect(knownRedisError(redirectionsRanOut('MOVED 5295 127.0.0.1:47701'))?.code).not.toBe('SVCNODE_REDIS_TRYAGAIN');
    expect(knownRedisError(new Error('MOVED 5295 127.0.0.1:47701'))?.code).toBe('SVCNODE_REDIS_WRONG_NODE');
  });
});
