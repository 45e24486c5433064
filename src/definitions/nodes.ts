import { readdir } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { InvalidInputError } from '../errors.js';
import { checkTlsPolicy } from '../tls/tls-policy.js';
import { checkAddresses } from './addresses.js';
import { checkTemplates } from './templates.js';
import type { NodeDefinition } from './types.js';
import { readJsonFile, validateDocument } from './validator.js';

/** Load and validate one node definition file. */
export function loadNodeFile(file: string): NodeDefinition {
  const path = resolve(file);
  const data = readJsonFile(path, 'SVCNODE_INVALID_DEFINITION');
  const node = validateDocument<NodeDefinition>('node', data, path);
  checkTemplates(node, path);
  checkAddresses(node, path);
  checkTlsPolicy(node.tls, node.tls.minVersion, path);
  return node;
}

export interface LoadedNodes {
  nodes: Map<string, NodeDefinition>;
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
  const errors: LoadedNodes['errors'] = [];
  for (const name of names) {
    const file = join(root, name);
    try {
      const node = loadNodeFile(file);
      const previous = nodes.get(node.id);
      if (previous) {
        throw new InvalidInputError('SVCNODE_INVALID_DEFINITION', `${file}: node id "${node.id}" is already defined by another file`, {
          file,
          field: '/id',
          hint: 'node ids must be unique within the nodes directory',
        });
      }
      nodes.set(node.id, node);
    } catch (error) {
      if (!(error instanceof InvalidInputError)) throw error;
      errors.push({ file: basename(file) === name ? file : name, error });
    }
  }
  return { nodes, errors };
}
