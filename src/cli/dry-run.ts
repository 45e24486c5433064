import { dirname, join, resolve } from 'node:path';
import type { TLSSocket } from 'node:tls';
import type { Command } from 'commander';
import { loadNodeFile } from '../definitions/nodes.js';
import { profilesFrom } from '../definitions/profiles.js';
import type { NodeDefinition } from '../definitions/types.js';
import { InvalidInputError } from '../errors.js';
import { exitCodeFor } from '../failures/categories.js';
import { inputFailure } from '../failures/failure.js';
import { CRL_PENDING } from '../failures/revocation-failure.js';
import { invokeWithRetries } from '../invoke/attempts.js';
import { DEFAULTS } from '../invoke/defaults.js';
import { invoke, type InvokeDeps } from '../invoke/execute.js';
import { failedResult } from '../invoke/failed-result.js';
import { checkHandshake, type HandshakeResult } from '../invoke/handshake-check.js';
import type { Result } from '../invoke/result.js';
import { callSettings } from '../invoke/settings.js';
import type { LoadedProfile } from '../pki/types.js';
import { AgentPool } from '../tls/agents.js';
import { sentChain } from '../tls/sent-chain.js';
import { KEYLOG_WARNING, KeylogAgentPool, KeylogFile } from '../tls/keylog.js';
import { readContextFile } from './context.js';
import { formatError, printJson, runAction, subcommand, type CliIo } from './io.js';
import { failedResultDocument, nodeIdOf } from './json-output.js';
import { formatHandshakeReport, formatResult } from './report.js';

interface DryRunOptions {
  context?: string;
  profiles?: string;
  json?: boolean;
  retry?: boolean;
  tlsOnly?: boolean;
  keylog?: string;
}

/** The run itself: every outcome, bad input included, is one Result. */
async function dryRun(file: string, options: DryRunOptions, io: CliIo, onProfile: (p: LoadedProfile) => void): Promise<Result | HandshakeResult> {
  let node: NodeDefinition;
  let context: Record<string, unknown>;
  let keylog: KeylogFile | undefined;
  try {
    node = loadNodeFile(file);
    context = options.context ? readContextFile(options.context) : {};
    keylog = options.keylog === undefined ? undefined : KeylogFile.open(options.keylog);
  } catch (error) {
    if (!(error instanceof InvalidInputError)) throw error;
    io.stderr(formatError(error));
    return failedResult(nodeIdOf(file), inputFailure(error));
  }
  const profilesDir = options.profiles ?? io.env.SVCNODE_PROFILES ?? join(dirname(resolve(file)), 'profiles');
  const load = profilesFrom(profilesDir, { env: io.env });
  if (keylog) io.stderr(`warning: --keylog ${keylog.file} ${KEYLOG_WARNING}`);
  const agents = keylog ? new KeylogAgentPool(keylog) : new AgentPool();
  let loaded: LoadedProfile | undefined;
  const deps: InvokeDeps = {
    agents,
    profile: async (name) => {
      try {
        const profile = await load(name);
        onProfile(profile);
        loaded = profile;
        return profile;
      } catch (error) {
        // Also said on stderr, as plainly as the other commands say it; the Result carries it too.
        io.stderr(formatError(error));
        throw error;
      }
    },
  };
  let result: Result | HandshakeResult;
  try {
    if (options.tlsOnly) result = await checkHandshake(node, context, { ...deps, ...(keylog ? { onSocket: keylog.attach } : {}) });
    else result = options.retry ? await invokeWithRetries(node, context, deps) : await invoke(node, context, deps);
    // A worker retries a pending distribution-point CRL; a dry-run makes one attempt unless told.
    if (!options.retry && result.failure?.hint.includes(CRL_PENDING)) result = { ...result, failure: { ...result.failure, hint: `${result.failure.hint}; a dry-run makes one attempt: run it with --retry to wait for the download` } };
    return loaded ? await withSentMarks(node, loaded, result, keylog?.attach) : result;
  } finally {
    agents.destroy();
    keylog?.close();
  }
}

/**
 * The server chain with each certificate marked `sent` or not: Node completes what the server
 * sends from trust.ca, so a server that sends only its leaf looks whole. Learnt from a second
 * handshake, the node's way (proxy, SNI, versions, ciphers), that trusts nothing and sends
 * nothing of ours (see sentChain); its secrets go to the key log too.
 */
async function withSentMarks<R extends Result>(node: NodeDefinition, profile: LoadedProfile, result: R, onSocket?: (socket: TLSSocket) => void): Promise<R> {
  const chain = result.tls?.serverChain;
  if (!result.tls || !chain?.length) return result;
  const url = new URL(result.request.url);
  const { spec } = callSettings(node, profile, url.origin, true);
  const sent = await sentChain(spec, spec.limits.connectMs + spec.limits.handshakeMs, onSocket);
  if (!sent) return result;
  const sentSet = new Set(sent);
  return { ...result, tls: { ...result.tls, serverChain: chain.map((c) => ({ ...c, sent: sentSet.has(c.fingerprint256) })) } };
}

/** `svcnode dry-run NODE.json`: one call through the worker's execution path, fully reported. */
export function dryRunCommand(io: CliIo): Command {
  return subcommand('dry-run') // usage errors exit 2 (commander alone would exit 1)
    .description('execute a node definition once, exactly as the worker would, and report the request, TLS session, server chain, timings and outcome')
    .argument('<node>', 'node definition file (JSON)')
    .option('--context <file>', 'JSON file with the context variables ({{context.x}})')
    .option('--profiles <dir>', 'certificate profiles directory (default: $SVCNODE_PROFILES, else <node dir>/profiles)')
    .option('--retry', "apply the node's retry policy (default: a single attempt)")
    .option('--json', 'print exactly one JSON Result document on stdout, for every outcome')
    .option('--tls-only', `complete the TLS handshake only (TLS 1.3: wait ${DEFAULTS.tlsOnlyVerdictMs} ms for the server's verdict on the client certificate); send no HTTP request`)
    .option('--keylog <file>', 'append the TLS session secrets to FILE (NSS key log format, for Wireshark; created with mode 0600)')
    .addHelpText('after', '\nExit codes: 0 ok, 2 invalid input, 3 TLS handshake failure, 4 HTTP status not accepted, 5 network failure or timeout.')
    .action((file: string, options: DryRunOptions) =>
      runAction(io, async () => {
        const result = await dryRun(file, options, io, (profile) => {
          if (options.json) return;
          for (const f of profile.findings) if (f.severity !== 'info') io.stderr(`${f.severity} ${f.code} ${f.file ?? profile.file}: ${f.message}`);
        });
        if (options.json) printJson(io, result);
        else io.stdout(formatResult(result) + ('handshake' in result ? formatHandshakeReport(result) : ''));
        return exitCodeFor(result.failure?.category);
      }, options.json ? (error) => failedResultDocument(nodeIdOf(file), error) : undefined),
    );
}
