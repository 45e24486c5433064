import { readdir } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import pLimit from 'p-limit';
import { InvalidInputError, errorMessage } from '../errors.js';
import { checkTlsPolicy } from '../tls/tls-policy.js';
import { checkAddresses } from './addresses.js';
import { checkTemplates } from './templates.js';
import type { NodeDefinition } from './types.js';
import { parseDocumentText, readDocumentFile, readJsonText, validateDocument } from './validator.js';

/** Validate parsed node definition data: schema, templates, addresses and TLS policy. */
function checkedNode(data: unknown, path: string): NodeDefinition {
  const node = validateDocument<NodeDefinition>('node', data, path);
  checkTemplates(node, path);
  checkAddresses(node, path);
  checkTlsPolicy(node.tls, node.tls.minVersion, path);
  return node;
}

/** Load and validate one node definition file. */
export function loadNodeFile(file: string): NodeDefinition {
  const path = resolve(file);
  return checkedNode(readDocumentFile('node', path), path);
}

/**
 * Node files read at once at start. A thousand reads started together held their buffers, file
 * handles and timers all at once (about 7 MB more resident memory at start in `npm run bench`), and
 * each read's READ_TIMEOUT_MS ran while it waited behind the others for one of libuv's four
 * threads: on a slow mount the last files would be given up for a wait that was not theirs.
 */
const START_READS_AT_ONCE = 16;

/** Load and validate one node definition file without blocking the event loop (reloads run beside calls). */
export async function readNodeFile(file: string): Promise<NodeDefinition> {
  const path = resolve(file);
  return checkedNode(parseDocumentText('node', await readJsonText(path, 'SVCNODE_INVALID_DEFINITION'), path), path);
}

/**
 * Why a node file cannot be used, as an InvalidInputError: one already is; anything else a load
 * throws (a defect the file provokes) is the file's problem too, at start as on reload, so one
 * file never stops the others from loading.
 */
export function nodeLoadError(file: string, error: unknown): InvalidInputError {
  if (error instanceof InvalidInputError) return error;
  return new InvalidInputError('SVCNODE_INVALID_DEFINITION', `${file}: ${errorMessage(error)}`, { cause: error, file, hint: 'fix the node definition' });
}

/** A node id defined by a second file: the file first by name keeps it (at start and on reload alike). */
export function duplicateNodeError(file: string, id: string, owner: string): InvalidInputError {
  return new InvalidInputError('SVCNODE_INVALID_DEFINITION', `${file}: node id "${id}" is already defined by ${owner}`, {
    file,
    field: '/id',
    hint: 'node ids must be unique within the nodes directory: remove or rename one of the two files (the first by name is the one in use)',
  });
}

export interface LoadedNodes {
  nodes: Map<string, NodeDefinition>;
  /** The file each loaded node came from, by file (absolute path) → node id. */
  files: Map<string, string>;
  /** Files that could not be used; the other nodes still load. */
  errors: { file: string; error: InvalidInputError }[];
}

/** Load every `*.json` node definition in a directory (any case of `.json`, as for profiles); bad files are reported and skipped. */
export async function loadNodesDir(dir: string): Promise<LoadedNodes> {
  const root = resolve(dir);
  let names: string[];
  try {
    names = (await readdir(root)).filter((n) => n.toLowerCase().endsWith('.json')).sort();
  } catch (cause) {
    throw new InvalidInputError('SVCNODE_FILE_NOT_FOUND', `${root}: cannot read the nodes directory`, {
      cause,
      file: root,
      hint: 'pass --nodes DIR (or set SVCNODE_NODES) to a directory of node definition files',
    });
  }
  const nodes = new Map<string, NodeDefinition>();
  const owners = new Map<string, string>();
  const files = new Map<string, string>();
  const errors: LoadedNodes['errors'] = [];
  // Read as the watcher reads (without blocking, each read given up after a while: a file whose
  // mount hangs must not hang the start), then judged in name order (the first by name keeps an id).
  const paths = names.map((name) => join(root, name));
  const limit = pLimit(START_READS_AT_ONCE);
  const outcomes = await Promise.allSettled(paths.map((file) => limit(() => readNodeFile(file))));
  for (const [i, file] of paths.entries()) {
    const outcome = outcomes[i];
    if (outcome?.status !== 'fulfilled') {
      errors.push({ file, error: nodeLoadError(file, outcome?.reason) });
      continue;
    }
    const node = outcome.value;
    const owner = owners.get(node.id);
    if (owner !== undefined) {
      errors.push({ file, error: duplicateNodeError(file, node.id, `another file (${basename(owner)})`) });
      continue;
    }
    nodes.set(node.id, node);
    owners.set(node.id, file);
    files.set(file, node.id);
  }
  return { nodes, files, errors };
}
