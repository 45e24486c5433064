import { Command, Option } from 'commander';
import { EXIT_UNDRAINED, runWorkerProcess } from '../../workers/worker-process.js';
import { DEFAULT_METRICS_HOST } from '../observability/server.js';
import { FAILURE_CATEGORIES, exitCodeFor } from '../failures/categories.js';
import type { BrokenKey, FailureSummary, NodeFailures } from '../failures/store.js';
import { createLogger } from '../observability/logger.js';
import { ServiceNodeClient, InvokeTimeoutError } from '../queue/client.js';
import { DEFAULT_REDIS_URL } from '../queue/connection.js';
import { WORKER_DEFAULTS } from '../queue/constants.js';
import { readContextFile } from './context.js';
import { printJson, printable, runAction, type CliIo } from './io.js';
import { errorDocument, failedResultDocument } from './json-output.js';
import { checkLogLevel, checkMetricsHost, wholeNumber } from './options.js';
import { formatResult } from './report.js';
import { formatTable } from './table.js';
import { InvalidInputError } from '../errors.js';
import { refuseKeylogInWorker } from '../tls/keylog.js';

/** How long enqueue and failures wait for Redis before exiting 5. */
const CLI_REDIS_TIMEOUT_MS = 5_000;

const REDIS_HELP = 'Redis URL: redis://, rediss://, redis+sentinel://h:p,h:p/MASTER[?sentinelPasswordEnv=VAR], redis+cluster://h:p,h:p, rediss+cluster:// (default: $REDIS_URL, else redis://127.0.0.1:6379)';
const PREFIX_HELP = "BullMQ key prefix, the same on workers and producers (default 'bull'; on a cluster '{svcnode}', and it must hold a {hash tag})";

function redisUrl(io: CliIo, option: string | undefined): string {
  return option ?? io.env.REDIS_URL ?? DEFAULT_REDIS_URL;
}

interface WorkerCliOptions {
  redis?: string;
  nodes?: string;
  profiles?: string;
  concurrency?: number;
  metricsPort?: number;
  metricsHost?: string;
  prefix?: string;
  shutdownGraceMs?: number;
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  reloadIntervalMs?: number;
  maxSlowCallsPerNode?: number;
  tlsSessionResumption?: boolean;
  keylog?: string;
}

/** `svcnode worker`: consume the invocation queue. */
export function workerCommand(io: CliIo): Command {
  return new Command('worker')
    .exitOverride() // usage errors reach main, which exits 2 (commander alone would exit 1)
    .description('consume the service-node-invocations queue and execute each invocation over mutual TLS')
    .option('--redis <url>', REDIS_HELP)
    .option('--nodes <dir>', 'node definitions directory (default: $SVCNODE_NODES)')
    .option('--profiles <dir>', 'certificate profiles directory (default: $SVCNODE_PROFILES)')
    .option('--concurrency <n>', `parallel invocations (default ${WORKER_DEFAULTS.concurrency})`, wholeNumber('--concurrency', 1))
    .option('--metrics-port <port>', 'serve /metrics and /healthz on this port (0: any free port)', wholeNumber('--metrics-port', 0, 65_535))
    .option('--metrics-host <address>', `address /metrics and /healthz bind to (default: $SVCNODE_METRICS_HOST, else ${DEFAULT_METRICS_HOST}; 0.0.0.0 for every interface)`)
    .option('--prefix <prefix>', PREFIX_HELP)
    .option('--shutdown-grace-ms <ms>', `hard deadline for held jobs on SIGTERM/SIGINT (default ${WORKER_DEFAULTS.shutdownGraceMs})`, wholeNumber('--shutdown-grace-ms', 0))
    .option('--lock-duration-ms <ms>', `job lock duration (default ${WORKER_DEFAULTS.lockDurationMs})`, wholeNumber('--lock-duration-ms', 1))
    .option('--stalled-interval-ms <ms>', `stalled-job check interval (default ${WORKER_DEFAULTS.stalledIntervalMs})`, wholeNumber('--stalled-interval-ms', 1))
    .option('--reload-interval-ms <ms>', 'how often the nodes and profiles directories are polled for changes; each poll reads the metadata of every file, about 1% of a core per 1,000 files at the default (default 5000; 0: never, a restart applies changes)', wholeNumber('--reload-interval-ms', 0))
    .option('--max-slow-calls-per-node <n>', 'calls one node may have in flight while its calls are timing out (a backend that does not answer); its further jobs wait, so other nodes keep their slots (default: a quarter of --concurrency, at least 1; 0: no limit)', wholeNumber('--max-slow-calls-per-node', 0))
    .option('--no-tls-session-resumption', 'force a full TLS handshake on every new connection')
    .addOption(new Option('--keylog <file>').hideHelp())
    .addHelpText('after', `\nExit codes: 0 stopped by SIGTERM/SIGINT with every held job finished; ${EXIT_UNDRAINED} held jobs unfinished when the grace period ended (they return to the queue),\nor Redis unusable at start (refused credentials); 2 invalid usage (bad URL, prefix without a hash tag on a cluster, --metrics-port taken).`)
    .action((options: WorkerCliOptions) =>
      runAction(io, async () => {
        refuseKeylogInWorker(options.keylog, io.env);
        checkLogLevel(io.env);
        const metricsHost = options.metricsHost ?? io.env.SVCNODE_METRICS_HOST;
        if (metricsHost) await checkMetricsHost(metricsHost, options.metricsHost ? '--metrics-host' : `SVCNODE_METRICS_HOST`);
        const nodesDir = options.nodes ?? io.env.SVCNODE_NODES;
        const profilesDir = options.profiles ?? io.env.SVCNODE_PROFILES;
        if (!nodesDir || !profilesDir) {
          throw new InvalidInputError('SVCNODE_USAGE', `missing ${!nodesDir ? '--nodes' : '--profiles'}`, { hint: 'pass --nodes DIR and --profiles DIR, or set SVCNODE_NODES and SVCNODE_PROFILES' });
        }
        return runWorkerProcess({
          redisUrl: redisUrl(io, options.redis),
          nodesDir,
          profilesDir,
          logger: createLogger(),
          env: io.env,
          ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}),
          ...(options.metricsPort !== undefined ? { metricsPort: options.metricsPort } : {}),
          ...(metricsHost ? { metricsHost } : {}),
          ...(options.prefix ? { prefix: options.prefix } : {}),
          ...(options.shutdownGraceMs !== undefined ? { shutdownGraceMs: options.shutdownGraceMs } : {}),
          ...(options.lockDurationMs !== undefined ? { lockDurationMs: options.lockDurationMs } : {}),
          ...(options.stalledIntervalMs !== undefined ? { stalledIntervalMs: options.stalledIntervalMs } : {}),
          ...(options.reloadIntervalMs !== undefined ? { reloadIntervalMs: options.reloadIntervalMs } : {}),
          ...(options.maxSlowCallsPerNode !== undefined ? { maxSlowCallsPerNode: options.maxSlowCallsPerNode } : {}),
          ...(options.tlsSessionResumption === false ? { tlsSessionResumption: false } : {}),
        });
      }),
    );
}

interface EnqueueCliOptions {
  redis?: string;
  context?: string;
  requestId?: string;
  wait?: boolean;
  timeoutMs?: number;
  json?: boolean;
  prefix?: string;
}

/** `svcnode enqueue NODE_ID`: add one invocation, optionally wait for its Result. */
export function enqueueCommand(io: CliIo): Command {
  return new Command('enqueue')
    .exitOverride() // usage errors reach main, which exits 2 (commander alone would exit 1)
    .description('enqueue one invocation of a node; with --wait, print its Result and exit with its code')
    .argument('<nodeId>', 'id of the node definition')
    .option('--redis <url>', REDIS_HELP)
    .option('--context <file>', 'JSON file with the context variables')
    .option('--request-id <id>', 'correlation id carried into the Result')
    .option('--wait', 'wait for the Result')
    .option('--timeout-ms <ms>', 'how long --wait waits (default 60000)', wholeNumber('--timeout-ms', 1))
    .option('--prefix <prefix>', PREFIX_HELP)
    .option('--json', 'print exactly one JSON document on stdout')
    .addHelpText('after', '\nExit codes with --wait: those of the Result (0, 2, 3, 4, 5); 5 also when no Result arrives in time.\nWithout --wait: 0 enqueued; 2 invalid input; 5 Redis unreachable, credentials refused or wrong cluster node (MOVED).')
    .action((nodeId: string, options: EnqueueCliOptions) =>
      runAction(io, async () => {
        const context = options.context ? readContextFile(options.context) : {};
        const client = new ServiceNodeClient({ redisUrl: redisUrl(io, options.redis), env: io.env, connectTimeoutMs: CLI_REDIS_TIMEOUT_MS, ...(options.prefix ? { prefix: options.prefix } : {}) });
        try {
          const jobId = await client.enqueue(nodeId, context, options.requestId ? { requestId: options.requestId } : {});
          if (!options.wait) {
            if (options.json) printJson(io, { jobId, nodeId });
            else io.stdout(`enqueued job ${jobId} for node ${nodeId}`);
            return 0;
          }
          try {
            const result = await client.result(jobId, options.timeoutMs ?? 60_000);
            if (options.json) printJson(io, result);
            else io.stdout(formatResult(result));
            return exitCodeFor(result.failure?.category);
          } catch (error) {
            if (!(error instanceof InvokeTimeoutError)) throw error;
            io.stderr(`error [${error.code}]: ${error.message}\n  hint: ${error.hint}`);
            if (options.json) printJson(io, failedResultDocument(nodeId, error, options.requestId));
            return 5;
          }
        } finally {
          await client.close();
        }
      }, options.json ? (error) => failedResultDocument(nodeId, error, options.requestId) : undefined),
    );
}

/** The summary when the index of nodes is broken: nothing to list, and why. */
type Summary = FailureSummary & { broken?: { key: string; code: 'SVCNODE_BROKEN_RECORD'; message: string; hint: string } };

/**
 * The index of nodes with records holds another type (WRONGTYPE): like a broken record, a
 * listing that says so (exit 0) instead of a raw Redis error; other errors still fail.
 */
function brokenIndex(error: unknown): Summary {
  if (!(error instanceof Error) || !error.message.startsWith('WRONGTYPE')) throw error;
  const key = (error as { command?: { args?: unknown[] } }).command?.args?.[0];
  const name = typeof key === 'string' ? `"${key}"` : 'of the node index';
  return {
    nodes: [],
    broken: {
      key: typeof key === 'string' ? key : '',
      code: 'SVCNODE_BROKEN_RECORD',
      message: `Redis key ${name} holds another type than the set of node ids svcnode writes, so no node can be listed`,
      hint: 'written by something other than svcnode: delete the key; the worker recreates it with the next invocation (svcnode failures NODE_ID still shows one node)',
    },
  };
}

function formatSummary(summary: Summary, total?: { nodes: number; failing: number; shown: number }, narrowed = false): string {
  if (summary.broken) return `no node can be listed [broken record]: ${printable(summary.broken.message)}\n  hint: ${summary.broken.hint}\n`;
  if (total?.nodes === 0) return 'no invocations recorded yet\n';
  const counted = total ? `${total.nodes} node${total.nodes === 1 ? '' : 's'} with records, ${total.failing} with failures${narrowed ? `; ${total.shown} shown` : ''}\n` : '';
  if (summary.nodes.length === 0) return `no node matches\n${counted}`;
  const rows = summary.nodes.map((n) => {
    const failures = Object.entries(n.counts).filter(([k]) => k !== 'handshakes_ok' && k !== 'session_reused');
    const last = n.lastFailure ? `${n.lastFailure.at} ${n.lastFailure.category}${n.lastFailure.broken ? ' (broken record)' : ''}` : '-';
    return [n.nodeId, String(n.counts.handshakes_ok ?? 0), String(n.counts.session_reused ?? 0), failures.map(([k, v]) => `${k}=${v}`).join(' ') || '-', n.broken ? `${last} (broken record: see below)` : last].map(printable);
  });
  const header = ['NODE', 'HANDSHAKES_OK', 'RESUMED', 'FAILURES', 'LAST FAILURE'];
  return `${formatTable(header, rows)}\n${summary.nodes.flatMap((n) => n.broken ?? []).map(formatBroken).join('')}${counted}`;
}

function formatBroken(b: BrokenKey): string {
  return `[broken record] ${printable(b.message)}\n  hint: ${b.hint}\n`;
}

function formatNode(n: NodeFailures): string {
  const lines = [`node ${n.nodeId}`, `counts: ${Object.entries(n.counts).map(([k, v]) => `${k}=${v}`).join(' ') || '(none)'}`];
  for (const r of n.recent) {
    lines.push(`${r.at}  ${r.category} (${r.code}, attempt ${r.attempt})${r.broken ? ' [broken record]' : ''}`, `  ${r.message}`, `  hint: ${r.hint}`);
    if (r.serverChain[0]) lines.push(`  server: ${r.serverChain[0].subject} (issuer ${r.serverChain[0].issuer}, valid to ${r.serverChain[0].validTo})`);
  }
  return `${lines.map(printable).join('\n')}\n${(n.broken ?? []).map(formatBroken).join('')}`;
}

/** Counts that are not failures: successful handshakes beside them. */
const NOT_FAILURES = new Set(['handshakes_ok', 'session_reused']);

type SummaryNode = FailureSummary['nodes'][number];

function failureCount(n: SummaryNode): number {
  let total = 0;
  for (const [k, v] of Object.entries(n.counts)) if (!NOT_FAILURES.has(k)) total += v;
  return total;
}

const SORTS = ['node', 'failures', 'recent'] as const;
type SortKey = (typeof SORTS)[number];

interface ListingOptions {
  failing?: boolean;
  category?: string;
  sort?: SortKey;
  limit?: number;
}

/**
 * The listing as asked: nodes with failures only (`--failing`, `--category`), sorted by id, by
 * failures (most first) or by the last failure (latest first), cut to `--limit`. The counts in
 * the human summary line are of the whole listing, before the cut.
 */
function listing(summary: Summary, o: ListingOptions): Summary & { total?: { nodes: number; failing: number; shown: number } } {
  if (summary.broken) return summary;
  let nodes = summary.nodes;
  const failing = nodes.filter((n) => failureCount(n) > 0).length;
  if (o.failing) nodes = nodes.filter((n) => failureCount(n) > 0);
  if (o.category !== undefined) nodes = nodes.filter((n) => (n.counts[o.category as string] ?? 0) > 0);
  const byId = (a: SummaryNode, b: SummaryNode): number => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0);
  if (o.sort === 'failures') nodes = [...nodes].sort((a, b) => failureCount(b) - failureCount(a) || byId(a, b));
  else if (o.sort === 'recent') nodes = [...nodes].sort((a, b) => (b.lastFailure?.at ?? '').localeCompare(a.lastFailure?.at ?? '') || byId(a, b));
  const shown = o.limit === undefined ? nodes : nodes.slice(0, o.limit);
  return { nodes: shown, total: { nodes: summary.nodes.length, failing, shown: shown.length } };
}

/** `svcnode failures [NODE_ID]`: per-node handshake outcomes and recent failures. */
export function failuresCommand(io: CliIo): Command {
  return new Command('failures')
    .exitOverride() // usage errors reach main, which exits 2 (commander alone would exit 1)
    .description('show handshake and failure counts per node, or the recent failures of one node')
    .argument('[nodeId]', 'show the recent failures of this node')
    .option('--redis <url>', REDIS_HELP)
    .option('--prefix <prefix>', PREFIX_HELP)
    .option('--failing', 'list only nodes with at least one failure (not those with successful handshakes only)')
    .addOption(new Option('--category <category>', 'list only nodes with failures of this category').choices(Object.keys(FAILURE_CATEGORIES)))
    .addOption(new Option('--sort <order>', 'order of the listing: node (by id), failures (most first) or recent (latest failure first)').choices(SORTS).default('node'))
    .option('--limit <n>', 'list at most this many nodes', wholeNumber('--limit', 1))
    .option('--json', 'print exactly one JSON document on stdout')
    .action((nodeId: string | undefined, options: { redis?: string; json?: boolean; prefix?: string } & ListingOptions) =>
      runAction(io, async () => {
        const narrowed = options.failing === true || options.category !== undefined || options.sort !== 'node' || options.limit !== undefined;
        if (nodeId !== undefined && narrowed) {
          throw new InvalidInputError('SVCNODE_USAGE', '--failing, --category, --sort and --limit shape the listing of all nodes, not the failures of one node', { hint: `run "svcnode failures ${nodeId.slice(0, 60)}" alone, or drop the node id` });
        }
        const client = new ServiceNodeClient({ redisUrl: redisUrl(io, options.redis), env: io.env, connectTimeoutMs: CLI_REDIS_TIMEOUT_MS, ...(options.prefix ? { prefix: options.prefix } : {}) });
        try {
          if (nodeId !== undefined) {
            const data = await client.failures(nodeId);
            if (options.json) printJson(io, data);
            else io.stdout(formatNode(data));
            return 0;
          }
          const { total, ...data } = listing(await client.failures().catch(brokenIndex), options);
          if (options.json) printJson(io, data);
          else io.stdout(formatSummary(data, total, narrowed));
          return 0;
        } finally {
          await client.close();
        }
      }, options.json ? errorDocument : undefined),
    );
}
