import { DelayedError, type Job } from 'bullmq';
import type { Logger } from 'pino';
import type { Registry } from '../definitions/registry.js';
import type { Invocation } from '../definitions/types.js';
import { validateDocument } from '../definitions/validator.js';
import { InvalidInputError } from '../errors.js';
import type { FailureStore } from '../failures/store.js';
import { inputFailure } from '../failures/failure.js';
import { invoke } from '../invoke/execute.js';
import { failedResult } from '../invoke/failed-result.js';
import { storedResult, type Result } from '../invoke/result.js';
import { retryDelay } from '../invoke/retry.js';
import type { TokenCache } from '../invoke/token-cache.js';
import type { Metrics } from '../observability/metrics.js';
import type { AgentPool } from '../tls/agents.js';
import { JOB_NAME } from './constants.js';
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
}

interface Progress {
  attempt?: number;
}

/** The Result of a job that could not be run: its data or node id is invalid. */
function invalidInputResult(nodeId: string, error: InvalidInputError, requestId?: string): Result {
  return failedResult(nodeId, inputFailure(error, 'fix the job data'), requestId ? { requestId } : {});
}

/**
 * The BullMQ processor: every invocation ends as a completed job whose return value is a Result.
 * Transient failures are retried by moving the job to delayed (no worker slot is held while it
 * waits, and a crash in between loses nothing); permanent ones return at once.
 */
export function createProcessor(deps: ProcessorDeps): (job: Job, token?: string, signal?: AbortSignal) => Promise<Result> {
  return async (job, token, signal) => {
    if (job.name !== JOB_NAME) {
      // Any producer can name a job: a wrong name is bad job data (a Result), not a failed job.
      const error = new InvalidInputError('SVCNODE_INVALID_DEFINITION', `job ${job.id ?? '?'} is named "${String(job.name).slice(0, 100)}", not "${JOB_NAME}"`, { hint: `add invocations to the queue as jobs named "${JOB_NAME}"` });
      const raw = job.data as Partial<Invocation> | undefined;
      const result = invalidInputResult(typeof raw?.nodeId === 'string' ? raw.nodeId.slice(0, 128) : '(invalid)', error);
      deps.logger.warn({ jobId: job.id, code: error.code }, 'job with an unknown name: ended with an invalid_input Result');
      deps.metrics?.observeInvocation({ ...result, nodeId: '(invalid)' });
      return result;
    }
    if (isUnparsable(job.data)) {
      const error = new InvalidInputError('SVCNODE_INVALID_DEFINITION', `job ${job.id ?? '?'} data in Redis is not valid JSON (${job.data.unparsable})`, { hint: 'enqueue through a BullMQ client, which stores data as JSON' });
      const result = invalidInputResult('(invalid)', error);
      deps.logger.warn({ jobId: job.id, code: error.code }, 'job data is not valid JSON: ended with an invalid_input Result');
      deps.metrics?.observeInvocation(result);
      return result;
    }
    const raw = job.data as Partial<Invocation> | undefined;
    let data: Invocation;
    try {
      data = validateDocument<Invocation>('invocation', raw, `job ${job.id ?? '?'} data`);
    } catch (error) {
      const nodeId = typeof raw?.nodeId === 'string' ? raw.nodeId : '(invalid)';
      const result = invalidInputResult(nodeId, error as InvalidInputError, typeof raw?.requestId === 'string' ? raw.requestId : undefined);
      deps.logger.warn({ jobId: job.id, code: result.failure?.code }, 'invalid job data');
      // Metric labels never take producer-supplied ids: unbounded label sets break Prometheus.
      deps.metrics?.observeInvocation({ ...result, nodeId: '(invalid)' });
      return result;
    }
    const registry = deps.registry();
    let node;
    try {
      node = registry.node(data.nodeId);
    } catch (error) {
      // Not recorded per node: arbitrary unknown ids must not create Redis keys.
      const result = invalidInputResult(data.nodeId, error as InvalidInputError, data.requestId);
      deps.logger.warn({ jobId: job.id, nodeId: data.nodeId }, 'unknown node');
      deps.metrics?.observeInvocation({ ...result, nodeId: '(unknown)' });
      return result;
    }
    const attempt = ((job.progress as Progress | undefined)?.attempt ?? 0) + 1;
    const result = storedResult(await invoke(node, data.context ?? {}, { profile: (name) => registry.profile(name), agents: deps.agents, ...(deps.tokens ? { tokens: deps.tokens } : {}) }, {
      attempt,
      ...(signal ? { signal } : {}),
      ...(data.requestId ? { requestId: data.requestId } : {}),
    }), node);
    // Failure records are diagnostics: losing one must not turn a finished call into a failed job.
    const recording = deps.store.record(result);
    if (recording) await recording.catch((error: unknown) => deps.logger.warn({ nodeId: node.id, err: (error as Error).message }, 'could not record the attempt'));
    deps.metrics?.observeAttempt(result);
    const delay = retryDelay(result, node, attempt);
    if (delay !== undefined && token !== undefined && !signal?.aborted) {
      deps.logger.info({ jobId: job.id, nodeId: node.id, attempt, category: result.failure?.category, delayMs: delay }, 'transient failure, retrying');
      await job.updateProgress({ attempt });
      await job.moveToDelayed(Date.now() + delay, token);
      throw new DelayedError();
    }
    deps.metrics?.observeInvocation(result);
    // An error svcnode does not know is a defect to report: logged with its raw code and message.
    const unexpected = result.failure?.code === 'SVCNODE_UNEXPECTED_ERROR';
    const level = result.ok ? 'debug' : unexpected ? 'error' : 'warn';
    if (deps.logger.isLevelEnabled(level)) deps.logger[level]({ jobId: job.id, nodeId: node.id, attempt, category: result.failure?.category ?? 'ok', code: result.failure?.code, totalMs: result.timings.totalMs, ...(unexpected ? { err: result.failure?.message } : {}) }, 'invocation finished');
    return result;
  };
}
