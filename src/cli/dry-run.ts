import { dirname, join, resolve } from 'node:path';
import { Command } from 'commander';
import { loadNodeFile } from '../definitions/nodes.js';
import { InvalidInputError } from '../errors.js';
import { exitCodeFor } from '../failures/categories.js';
import { invokeWithRetries } from '../invoke/attempts.js';
import { DEFAULTS } from '../invoke/defaults.js';
import { invoke } from '../invoke/execute.js';
import { loadProfile } from '../pki/profile.js';
import type { LoadedProfile } from '../pki/types.js';
import { AgentPool } from '../tls/agents.js';
import { KEYLOG_WARNING, KeylogAgentPool, KeylogFile } from '../tls/keylog.js';
import { checkHandshake, formatHandshakeFacts } from '../invoke/handshake-check.js';
import { readContextFile } from './context.js';
import { printJson, runAction, type CliIo } from './io.js';
import { formatResult } from './report.js';

interface DryRunOptions {
  context?: string;
  profiles?: string;
  json?: boolean;
  retry?: boolean;
  tlsOnly?: boolean;
  keylog?: string;
}

/** `svcnode dry-run NODE.json`: one call through the worker's execution path, fully reported. */
export function dryRunCommand(io: CliIo): Command {
  return new Command('dry-run')
    .description('execute a node definition once, exactly as the worker would, and report the request, TLS session, server chain, timings and outcome')
    .argument('<node>', 'node definition file (JSON)')
    .option('--context <file>', 'JSON file with the context variables ({{context.x}})')
    .option('--profiles <dir>', 'certificate profiles directory (default: $SVCNODE_PROFILES, else <node dir>/profiles)')
    .option('--retry', "apply the node's retry policy (default: a single attempt)")
    .option('--json', 'print exactly one JSON Result document on stdout')
    .option('--tls-only', `complete the TLS handshake only (TLS 1.3: wait ${DEFAULTS.tlsOnlyVerdictMs} ms for the server's verdict on the client certificate); send no HTTP request`)
    .option('--keylog <file>', 'append the TLS session secrets to FILE (NSS key log format, for Wireshark; created with mode 0600)')
    .addHelpText('after', '\nExit codes: 0 ok, 2 invalid input, 3 TLS handshake failure, 4 HTTP status not accepted, 5 network failure or timeout.')
    .action((file: string, options: DryRunOptions) =>
      runAction(io, async () => {
        const node = loadNodeFile(file);
        const context = options.context ? readContextFile(options.context) : {};
        const profilesDir = resolve(options.profiles ?? io.env.SVCNODE_PROFILES ?? join(dirname(resolve(file)), 'profiles'));
        const profileFile = join(profilesDir, `${node.tls.profile}.json`);
        let profile: LoadedProfile;
        try {
          profile = await loadProfile(profileFile, { env: io.env });
        } catch (error) {
          if (error instanceof InvalidInputError && error.code === 'SVCNODE_FILE_NOT_FOUND' && error.file === profileFile) {
            throw new InvalidInputError('SVCNODE_UNKNOWN_PROFILE', `node "${node.id}" uses profile "${node.tls.profile}", but ${profileFile} does not exist`, {
              file: profileFile,
              hint: 'pass --profiles DIR (or set SVCNODE_PROFILES) to the directory holding the profile',
            });
          }
          throw error;
        }
        if (!options.json) {
          for (const f of profile.findings) if (f.severity !== 'info') io.stderr(`${f.severity} ${f.code} ${f.file ?? profile.file}: ${f.message}`);
        }
        const keylog = options.keylog === undefined ? undefined : KeylogFile.open(options.keylog);
        if (keylog) io.stderr(`warning: --keylog ${keylog.file} ${KEYLOG_WARNING}`);
        const agents = keylog ? new KeylogAgentPool(keylog) : new AgentPool();
        try {
          const deps = { profile: () => profile, agents };
          if (options.tlsOnly) {
            const checked = await checkHandshake(node, context, { ...deps, ...(keylog ? { onSocket: keylog.attach } : {}) });
            if (options.json) printJson(io, checked);
            else io.stdout(formatResult(checked) + formatHandshakeFacts(checked.handshake));
            return exitCodeFor(checked.failure?.category);
          }
          const result = options.retry ? await invokeWithRetries(node, context, deps) : await invoke(node, context, deps);
          if (options.json) printJson(io, result);
          else io.stdout(formatResult(result));
          return exitCodeFor(result.failure?.category);
        } finally {
          agents.destroy();
          keylog?.close();
        }
      }),
    );
}
