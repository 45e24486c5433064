import { DelayedError, Job, WaitingError } from 'bullmq';
import type { Logger } from 'pino';
import type { Registry } from '../definitions/registry.js';
import type { Invocation, NodeDefinition } from '../definitions/types.js';
import { validateDocument } from '../definitions/validator.js';
import { InvalidInputError, errorMessage } from '../errors.js';
import type { FailureStore } from '../failures/store.js';
import { failureOf, inputFailure } from '../failures/failure.js';
import { invoke } from '../invoke/execute.js';
import { definedOrigin } from '../invoke/render.js';
import { failedResult } from '../invoke/failed-result.js';
import { reportedUrl, storedResult, type Result } from '../invoke/result.js';
import { retryDelay, settledResult } from '../invoke/retry.js';
import type { TokenCache } from '../invoke/token-cache.js';
import type { Metrics } from '../observability/metrics.js';
import { RepeatGate } from '../observability/repeat-gate.js';
import type { AgentPool } from '../tls/agents.js';
import { JOB_NAME } from './constants.js';
import { DeferredJobs, SATURATED_DEADLINE_MS, TIMING_OUT_MEMORY_MS, saturatedDelay, type CallOutcome, type NodeSlots } from './node-slots.js';
import { isUnparsable } from './safe-worker.js';

export interface ProcessorDeps {
  /** The current definitions (replaced on reload). */
  registry: () => Registry;
  agents: AgentPool;
  /** Certificate-session tokens shared by the worker processes. */
  tokens?: TokenCache;
  store: FailureStore;
  metrics?: Metrics;
  logger: Logger;
  /** Calls in flight per node: a node whose calls are timing out gets no more than its share of slots (its further jobs wait). @defaultValue no limit */
  slots?: NodeSlots;
}

interface Progress {
  attempt?: number;
}

/** The longest node id and request id the invocation schema takes. */
const MAX_NODE_ID = 128;
const MAX_REQUEST_ID = 200;

function cut(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** The attempts svcnode recorded before this one (0 when the progress is not what svcnode writes: a producer can set it). */
function attemptsBefore(job: Job): number {
  const made = (job.progress as Progress | null | undefined)?.attempt;
  return typeof made === 'number' && Number.isSafeInteger(made) && made >= 0 ? made : 0;
}

/** The Result of a job that could not be run: its data or node id is invalid. */
function invalidInputResult(nodeId: string, error: InvalidInputError, requestId?: string): Result {
  return failedResult(nodeId, inputFailure(error, 'fix the job data'), requestId ? { requestId } : {});
}

interface Refusal {
  nodeId: string;
  error: InvalidInputError;
  requestId?: string;
  /** The metric label: never a producer-supplied id (unbounded label sets break Prometheus). */
  label: string;
  message: string;
  /** Log fields beside the job id. @defaultValue the error code */
  log?: Record<string, unknown>;
}

/**
 * End a job that cannot run with an invalid_input Result, counted under its label; logged at most
 * once a minute per message, node and code, with how many were held back (`repeated`): a flow
 * that keeps calling a removed node logged one line per job.
 */
function refused(deps: ProcessorDeps, gate: RepeatGate, job: Job, r: Refusal): Result {
  const result = invalidInputResult(r.nodeId, r.error, r.requestId);
  const repeated = gate.pass(`${r.message}\u0000${r.nodeId}\u0000${r.error.code}`);
  if (repeated !== undefined) deps.logger.warn({ jobId: job.id, ...(r.log ?? { code: r.error.code }), ...(repeated ? { repeated } : {}) }, r.message);
  deps.metrics?.observeInvocation({ ...result, nodeId: r.label });
  return result;
}

/** How long a refusal of the same kind stays out of the log after it was logged. */
const REFUSAL_LOG_WINDOW_MS = 60_000;
/**
 * How long a node's retries of one failure category, and its failed invocations of one code, stay
 * out of the log after one was logged (with `repeated`: how many were held back). A backend
 * refusing 100 jobs a second logged ~300 lines a second (5 GB a day); each attempt is still in
 * the node's failure records and metrics, and each job's Result.
 */
const RETRY_LOG_WINDOW_MS = 60_000;
const FAILURE_LOG_WINDOW_MS = 10_000;

/**
 * Return a job whose call the shutdown cut short to the wait list. Always throws WaitingError,
 * so BullMQ writes nothing more for it; when Redis does not take the move (unreachable, the lock
 * already lost), the stall check returns the job after its lock expires.
 */
async function handBack(deps: ProcessorDeps, job: Job, token: string, nodeId: string): Promise<never> {
  try {
    await job.moveToWait(token);
    deps.logger.info({ jobId: job.id, nodeId }, 'call cut short by the shutdown: job returned to the queue');
  } catch (error) {
    deps.logger.warn({ jobId: job.id, nodeId, err: errorMessage(error) }, 'call cut short by the shutdown; Redis did not take the job back: the stall check returns it to the queue when its lock expires');
  }
  throw new WaitingError();
}

/** What the slot limit learns from a call: a timeout (the backend did not answer in time), an answer (whatever its status), or neither. */
function outcomeOf(result: Result | undefined): CallOutcome {
  // A call cut short by the worker's shutdown says nothing of the backend.
  if (result?.failure?.category === 'timeout' && result.failure.code !== 'SVCNODE_ABORTED') return 'timeout';
  return result?.ok || result?.response ? 'ok' : 'other';
}

/** Record the attempt's failure, if any: failure records are diagnostics, and losing one must not turn a finished call into a failed job. */
async function recorded(deps: ProcessorDeps, nodeId: string, result: Result): Promise<void> {
  const recording = deps.store.record(result);
  if (recording) await recording.catch((error: unknown) => deps.logger.warn({ nodeId, err: (error as Error).message }, 'could not record the attempt'));
}

/**
 * The end of an invocation (its Result is final): counted, and logged (a failure at most once per
 * FAILURE_LOG_WINDOW_MS per node and code, with how many were held back; a success at debug level).
 */
function ended(deps: ProcessorDeps, failures: RepeatGate, job: Job, nodeId: string, result: Result, attempt: number): Result {
  deps.metrics?.observeInvocation(result);
  // An error svcnode does not know is a defect to report: logged with its raw code and message.
  const unexpected = result.failure?.code === 'SVCNODE_UNEXPECTED_ERROR';
  const level = result.ok ? 'debug' : unexpected ? 'error' : 'warn';
  if (deps.logger.isLevelEnabled(level)) {
    const repeated = result.ok ? 0 : failures.pass(`${nodeId}\u0000${result.failure?.code ?? ''}`);
    if (repeated !== undefined) deps.logger[level]({ jobId: job.id, nodeId, attempt, category: result.failure?.category ?? 'ok', code: result.failure?.code, totalMs: result.timings.totalMs, ...(unexpected ? { err: result.failure?.message } : {}), ...(repeated ? { repeated } : {}) }, 'invocation finished');
  }
  return result;
}

/**
 * Put a node's waiting jobs back in the queue now: `count` of those this worker deferred, when
 * one of its calls (`answered`, a job of the same queue) was answered. Only their ids are kept: a
 * Job holds its data, and a producer's context has no size limit, so up to REMEMBERED_DEFERRALS
 * Jobs kept for up to a minute each would hold that many contexts in the worker's memory. Each
 * is promoted through a handle without data on the answered job's queue (the worker taking jobs
 * now). A job already taken or ended is left as it is (promote refuses it); a Redis that refuses
 * only leaves the job to its own delay.
 */
function released(deps: ProcessorDeps, deferred: DeferredJobs<string>, answered: Job, nodeId: string, count: number, recovered: RepeatGate | undefined): void {
  const ids = deferred.release(nodeId, count);
  if (ids.length === 0) return;
  const repeated = recovered?.pass(nodeId);
  if (repeated !== undefined) deps.logger.info({ nodeId, released: ids.length, ...(repeated ? { repeated } : {}) }, 'node answers again: jobs of it that were waiting return to the queue, as many as its share of slots at once, then one per answer');
  const { queue } = answered as unknown as { queue: ConstructorParameters<typeof Job>[0] };
  for (const id of ids) new Job(queue, JOB_NAME, null, {}, id).promote().catch(() => undefined);
}

/** How long a node stays out of the log after saying it is saturated. */
const SATURATED_LOG_WINDOW_MS = 60_000;

/** The Result of a job of a saturated node that waited SATURATED_DEADLINE_MS: not sent. */
function saturatedResult(node: NodeDefinition, job: Job, slow: number, requestId: string | undefined): Result {
  const waited = Math.round((Date.now() - job.timestamp) / 1000);
  const origin = definedOrigin(node.request.url);
  const result = failedResult(
    node.id,
    failureOf(
      'timeout',
      'SVCNODE_NODE_SATURATED',
      `${origin?.host ?? node.id}: not sent: calls to node "${node.id}" were timing out, and ${slow} of them in flight held its share of the worker's slots each time this job was taken; it waited ${waited} s`,
      'the backend does not answer in time: see its recent failures (svcnode failures NODE) and check it; a node whose calls time out may hold a quarter of the worker\'s slots (--max-slow-calls-per-node, the maxSlowCallsPerNode worker option)',
      'connect',
    ),
    { request: { method: node.request.method, url: reportedUrl(origin?.origin ?? '') }, ...(requestId ? { requestId } : {}) },
  );
  result.attempts = attemptsBefore(job);
  return result;
}

/**
 * The BullMQ processor: every invocation ends as a completed job whose return value is a Result.
 * Transient failures are retried by moving the job to delayed (no worker slot is held while it
 * waits, and a crash in between loses nothing); permanent ones return at once.
 */
export function createProcessor(deps: ProcessorDeps): (job: Job, token?: string, signal?: AbortSignal) => Promise<Result> {
  const gate = new RepeatGate(REFUSAL_LOG_WINDOW_MS);
  const retries = new RepeatGate(RETRY_LOG_WINDOW_MS);
  const failures = new RepeatGate(FAILURE_LOG_WINDOW_MS);
  const saturation = new RepeatGate(SATURATED_LOG_WINDOW_MS);
  const deferred = new DeferredJobs<string>();
  const recoveries = new RepeatGate(SATURATED_LOG_WINDOW_MS);
  return async (job, token, signal) => {
    if (job.name !== JOB_NAME) {
      // Any producer can name a job: a wrong name is bad job data (a Result), not a failed job.
      const error = new InvalidInputError('SVCNODE_INVALID_DEFINITION', `job ${job.id ?? '?'} is named "${String(job.name).slice(0, 100)}", not "${JOB_NAME}"`, { hint: `add invocations to the queue as jobs named "${JOB_NAME}"` });
      const raw = job.data as Partial<Invocation> | undefined;
      return refused(deps, gate, job, { nodeId: typeof raw?.nodeId === 'string' ? raw.nodeId.slice(0, 128) : '(invalid)', error, label: '(invalid)', message: 'job with an unknown name: ended with an invalid_input Result' });
    }
    if (isUnparsable(job.data)) {
      const { field, unparsable } = job.data;
      const error = new InvalidInputError('SVCNODE_INVALID_DEFINITION', `job ${job.id ?? '?'} ${field} in Redis ${unparsable}`, { hint: 'enqueue through a BullMQ client, which stores data, options and progress as JSON (options as an object)' });
      return refused(deps, gate, job, { nodeId: '(invalid)', error, label: '(invalid)', message: `job ${field} in Redis cannot be read: ended with an invalid_input Result` });
    }
    const raw = job.data as Partial<Invocation> | undefined;
    let data: Invocation;
    try {
      data = validateDocument<Invocation>('invocation', raw, `job ${job.id ?? '?'} data`);
    } catch (error) {
      // Echoed as far as they are bounded: the stored Result keeps its size whatever a producer wrote.
      const nodeId = typeof raw?.nodeId === 'string' ? cut(raw.nodeId, MAX_NODE_ID) : '(invalid)';
      const requestId = typeof raw?.requestId === 'string' && raw.requestId.length <= MAX_REQUEST_ID ? raw.requestId : undefined;
      return refused(deps, gate, job, { nodeId, error: error as InvalidInputError, ...(requestId ? { requestId } : {}), label: '(invalid)', message: 'invalid job data' });
    }
    const registry = deps.registry();
    let node;
    try {
      node = registry.node(data.nodeId);
    } catch (error) {
      // Not recorded per node: arbitrary unknown ids must not create Redis keys. A removed node's id was once loaded (a bounded label).
      const removed = (error as InvalidInputError).code === 'SVCNODE_NODE_REMOVED';
      // Its series go once jobs stop naming it (Metrics.retireNode).
      if (removed) deps.metrics?.retireNode(data.nodeId);
      return refused(deps, gate, job, { nodeId: data.nodeId, error: error as InvalidInputError, ...(data.requestId ? { requestId: data.requestId } : {}), label: removed ? data.nodeId : '(unknown)', message: removed ? 'removed node' : 'unknown node', log: { nodeId: data.nodeId, code: (error as InvalidInputError).code } });
    }
    const slots = deps.slots;
    if (slots && token !== undefined && slots.saturated(node.id)) {
      const now = Date.now();
      if (now - job.timestamp < SATURATED_DEADLINE_MS) {
        // The job waits without holding a slot, and without counting as an attempt.
        deps.metrics?.deferredJobs.inc({ node: node.id });
        const repeated = saturation.pass(node.id);
        const inFlight = slots.inFlight(node.id);
        if (repeated !== undefined) deps.logger.warn({ nodeId: node.id, inFlight, limit: slots.limit, ...(repeated ? { repeated } : {}) }, `node saturated: its calls are timing out (none has succeeded since, within ${TIMING_OUT_MEMORY_MS / 1000} s) and ${inFlight} are in flight (its limit: ${slots.limit}); its further jobs wait so that other nodes keep their slots`);
        const dueAt = now + saturatedDelay(now - job.timestamp);
        await job.moveToDelayed(dueAt, token);
        if (job.id !== undefined) deferred.add(node.id, job.id, job.id, dueAt);
        throw new DelayedError();
      }
      const result = saturatedResult(node, job, slots.inFlight(node.id), data.requestId);
      await recorded(deps, node.id, result);
      return ended(deps, failures, job, node.id, result, result.attempts);
    }
    const attempt = attemptsBefore(job) + 1;
    const call = slots?.enter(node.id);
    let invoked: Result | undefined;
    try {
      invoked = await invoke(node, data.context ?? {}, { profile: (name) => registry.profile(name), agents: deps.agents, ...(deps.tokens ? { tokens: deps.tokens } : {}) }, {
        attempt,
        onReplays: (count) => deps.metrics?.connectionReplays.inc({ node: node.id }, count),
        ...(signal ? { signal } : {}),
        ...(data.requestId ? { requestId: data.requestId } : {}),
      });
    } finally {
      if (call && slots) {
        const outcome = outcomeOf(invoked);
        const recovered = slots.leave(node.id, call, outcome);
        // Each answer lets one waiting job of the node return; the answer that ends its timing out, a share of them.
        if (outcome === 'ok' && deferred.size > 0) released(deps, deferred, job, node.id, recovered ? slots.limit : 1, recovered ? recoveries : undefined);
      }
    }
    const result = storedResult(settledResult(invoked, node), node);
    // A job the stall check handed back: its earlier run may have reached the backend, and the Result says so.
    if (job.stalledCounter > 0) result.stalled = job.stalledCounter;
    // Cut short by the worker's shutdown: the backend did not fail, and the call is not over. The
    // job goes back to the wait list at once, for any worker to take, instead of ending with a
    // timeout Result or waiting out its lock for the stall check.
    if (signal?.aborted && result.failure?.code === 'SVCNODE_ABORTED' && token !== undefined) await handBack(deps, job, token, node.id);
    await recorded(deps, node.id, result);
    deps.metrics?.observeAttempt(result);
    const delay = retryDelay(result, node, attempt);
    if (delay !== undefined && token !== undefined && !signal?.aborted) {
      const repeated = retries.pass(`${node.id}\u0000${result.failure?.category ?? ''}`);
      if (repeated !== undefined) deps.logger.info({ jobId: job.id, nodeId: node.id, attempt, category: result.failure?.category, code: result.failure?.code, delayMs: delay, ...(repeated ? { repeated } : {}) }, 'transient failure, retrying');
      await job.updateProgress({ attempt });
      await job.moveToDelayed(Date.now() + delay, token);
      throw new DelayedError();
    }
    return ended(deps, failures, job, node.id, result, attempt);
  };
}
