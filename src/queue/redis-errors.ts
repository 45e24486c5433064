import { InvalidInputError, SvcnodeError, UnavailableError, errorMessage } from '../errors.js';

/** Redis replies that are configuration mistakes rather than outages, with the fix for each. */
const KNOWN: { pattern: RegExp; make: (message: string, cause: unknown) => SvcnodeError }[] = [
  {
    pattern: /\b(NOAUTH|WRONGPASS)\b|invalid username-password|Authentication required/i,
    make: (message, cause) =>
      new UnavailableError('SVCNODE_REDIS_AUTH', `Redis refused the credentials: ${message}`, {
        cause,
        hint: 'put the right user and password in the URL (redis://user:pass@host:port), and for Sentinel name the sentinels\' password with ?sentinelPasswordEnv=VAR',
      }),
  },
  {
    pattern: /^(MOVED|ASK) \d+ /,
    make: (message, cause) =>
      new UnavailableError('SVCNODE_REDIS_WRONG_NODE', `this Redis node is part of a Redis Cluster and does not own the queue's slot (${message})`, {
        cause,
        hint: "use redis+cluster://host:port,host:port (every node or a few seeds) with a hash-tagged --prefix such as '{svcnode}'",
      }),
  },
  {
    pattern: /cluster support disabled/i,
    make: (message, cause) =>
      new InvalidInputError('SVCNODE_REDIS_NOT_CLUSTER', `the Redis URL names a Redis Cluster, but this server is not one (${message})`, {
        cause,
        hint: 'use redis://host:port for a single server (redis+sentinel:// for Sentinel), or enable cluster mode on the servers (cluster-enabled yes)',
      }),
  },
  {
    pattern: /DB index is out of range/i,
    make: (message, cause) =>
      new InvalidInputError('SVCNODE_REDIS_DB', `the Redis URL selects a database this server does not have (${message})`, {
        cause,
        hint: "use a database number below the server's 'databases' setting (16 by default: /0 to /15)",
      }),
  },
  {
    pattern: /^CROSSSLOT\b/,
    make: (message, cause) =>
      new InvalidInputError('SVCNODE_REDIS_CROSSSLOT', `the queue's keys span several Redis Cluster slots (${message})`, {
        cause,
        hint: "use a prefix with a hash tag, e.g. --prefix '{svcnode}', the same on workers and producers",
      }),
  },
  // Redis is up and answers, but refuses the queue's commands: nothing moves until an operator acts.
  {
    pattern: /^OOM command not allowed\b/,
    make: (message, cause) =>
      new UnavailableError('SVCNODE_REDIS_OOM', `Redis refuses writes: it has reached its maxmemory (${message})`, {
        cause,
        hint: "free memory in Redis or raise its maxmemory (INFO memory shows what is used); it takes writes again as soon as there is room (under maxmemory-policy noeviction the queued jobs are kept meanwhile)",
      }),
  },
  {
    pattern: /^MISCONF\b/,
    make: (message, cause) =>
      new UnavailableError('SVCNODE_REDIS_MISCONF', `Redis refuses writes: it cannot save its snapshot to disk (${message})`, {
        cause,
        hint: "check the Redis server's disk (free space, permissions of its dir) and its log; it takes writes again once a snapshot succeeds",
      }),
  },
  {
    pattern: /^READONLY\b/,
    make: (message, cause) =>
      new UnavailableError('SVCNODE_REDIS_READONLY', `the Redis URL names a read-only replica, which refuses writes (${message})`, {
        cause,
        hint: 'point the URL at the master, or use redis+sentinel:// (or redis+cluster://) so a failover is followed',
      }),
  },
  {
    pattern: /^NOREPLICAS\b/,
    make: (message, cause) =>
      new UnavailableError('SVCNODE_REDIS_NOREPLICAS', `Redis refuses writes: fewer replicas are in sync than its min-replicas-to-write asks (${message})`, {
        cause,
        hint: 'bring the replicas of this master back (redis-cli INFO replication shows them), or lower its min-replicas-to-write; writes resume once enough replicas are in sync',
      }),
  },
  {
    pattern: /^BUSY\b/,
    make: (message, cause) =>
      new UnavailableError('SVCNODE_REDIS_BUSY', `Redis answers nothing but BUSY: a Lua script or function runs longer than its busy-reply-threshold (${message})`, {
        cause,
        hint: "find the long script (the Redis log, SLOWLOG) and end it with SCRIPT KILL or FUNCTION KILL; svcnode's own scripts are short",
      }),
  },
  {
    pattern: /^NOPERM\b/,
    make: (message, cause) =>
      new UnavailableError('SVCNODE_REDIS_NOPERM', `the Redis user may not run the queue's commands or keys (${message})`, {
        cause,
        hint: "grant the URL's Redis user the queue's keys (~bull:* or ~PREFIX:*, and ~svcnode:*) and BullMQ's commands: +@all is simplest; at least @read @write @scripting @blocking @connection and INFO",
      }),
  },
  // ioredis's words when a cluster command used up its redirections (maxRedirections); the last reply says why.
  {
    pattern: /^Too many Cluster redirections\b/,
    make: (message, cause) =>
      new UnavailableError('SVCNODE_REDIS_REDIRECTS', `the Redis Cluster kept redirecting the command (${message})`, {
        cause,
        hint: "the queue's slot was moving longer than the connection waits: TRYAGAIN or ASK while it migrates to another master (a reshard), MOVED or CLUSTERDOWN while its master fails over; retry once that is over (an enqueue with the same jobId is not queued twice), and if it lasts, look for a slot left open with redis-cli --cluster check",
      }),
  },
  // A multi-key command (every BullMQ script) on a slot being migrated: TRYAGAIN, which ioredis retries (its redirections running out is the entry above).
  {
    pattern: /^TRYAGAIN\b/,
    make: (message, cause) =>
      new UnavailableError('SVCNODE_REDIS_TRYAGAIN', `Redis Cluster refuses the queue's scripts while their slot migrates (${message})`, {
        cause,
        hint: "the queue's slot is migrating between cluster nodes; jobs wait until it completes. If it does not (a reshard stopped half-way), finish it with redis-cli --cluster fix, or end it with CLUSTER SETSLOT <slot> STABLE on both nodes",
      }),
  },
  {
    pattern: /^UNBLOCKED\b/,
    make: (message, cause) =>
      new UnavailableError('SVCNODE_REDIS_FAILOVER', `a failover is under way: the node this blocking command waited on became a replica (${message})`, {
        cause,
        hint: 'the normal trace of a failover (planned or not): the worker follows the new master by itself, nothing to do unless it keeps coming; see the README on failover for what a failover can lose',
      }),
  },
];

/** Codes of Redis replies that refuse the queue's commands while Redis is up (the queue cannot move). */
const REFUSES_COMMANDS = new Set(['SVCNODE_REDIS_OOM', 'SVCNODE_REDIS_MISCONF', 'SVCNODE_REDIS_READONLY', 'SVCNODE_REDIS_NOREPLICAS', 'SVCNODE_REDIS_BUSY', 'SVCNODE_REDIS_NOPERM', 'SVCNODE_REDIS_TRYAGAIN', 'SVCNODE_REDIS_REDIRECTS']);

/** The coded error when Redis refused a command of the queue (OOM, MISCONF, READONLY, NOREPLICAS, BUSY, NOPERM), or undefined. */
export function commandRefusal(error: unknown): SvcnodeError | undefined {
  const known = knownRedisError(error);
  return known !== undefined && REFUSES_COMMANDS.has(known.code) ? known : undefined;
}

/** A coded error for a known Redis reply (auth, MOVED, CROSSSLOT), or undefined. */
export function knownRedisError(error: unknown): SvcnodeError | undefined {
  if (error instanceof SvcnodeError) return error;
  const message = errorMessage(error);
  // ioredis Cluster wraps a node's reply as "…: lastNodeError"; look at both.
  const last = (error as { lastNodeError?: unknown } | undefined)?.lastNodeError;
  for (const text of [message, last === undefined ? '' : errorMessage(last)]) {
    for (const k of KNOWN) if (k.pattern.test(text)) return k.make(text, withoutCommand(error));
  }
  return undefined;
}

/** Rethrow a Redis error as a coded SvcnodeError when it is a known configuration mistake. */
export function translateRedisError(error: unknown): never {
  throw knownRedisError(error) ?? withoutCommand(error);
}

/** Commands whose arguments can hold a password. */
const SECRET_COMMANDS = new Set(['auth', 'hello', 'migrate', 'config', 'acl']);

/**
 * The error without the arguments of a failed command that can carry a password: ioredis attaches
 * the command to a reply error (`command.args`), and for AUTH or HELLO those hold the password,
 * which anyone who logs or inspects the error (or its `cause`) would print. Other commands keep
 * theirs: the key of a failed read names what is broken.
 */
function withoutCommand(error: unknown): unknown {
  // A Cluster's error carries the node's reply error, command included.
  const last = (error as { lastNodeError?: unknown } | undefined)?.lastNodeError;
  if (last !== undefined && last !== error) withoutCommand(last);
  const command = (error as { command?: { name?: unknown } } | undefined)?.command;
  if (command && typeof command === 'object' && SECRET_COMMANDS.has(String(command.name).toLowerCase())) (error as { command: unknown }).command = { name: command.name };
  return error;
}
