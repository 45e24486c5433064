/** The shipped examples stay valid: every examples/nodes/*.json against the node schema, rendered with examples/context.json. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { NodeDefinition } from '../../src/definitions/types.js';
import { validateDocument } from '../../src/definitions/validator.js';
import { renderRequest } from '../../src/invoke/render.js';
import { REPO_ROOT } from '../helpers/cli.js';

const NODES_DIR = join(REPO_ROOT, 'examples', 'nodes');
const files = readdirSync(NODES_DIR).filter((f) => f.endsWith('.json')).sort();
const context = JSON.parse(readFileSync(join(REPO_ROOT, 'examples', 'context.json'), 'utf8')) as Record<string, unknown>;

describe('examples/nodes', () => {
  it('ships get-account.json', () => {
    expect(files).toContain('get-account.json');
  });

  it.each(files)('%s is a valid node definition that renders with examples/context.json', (file) => {
    const path = join(NODES_DIR, file);
    const node = validateDocument<NodeDefinition>('node', JSON.parse(readFileSync(path, 'utf8')), path);
    expect(`${node.id}.json`).toBe(file);
    const rendered = renderRequest(node, context);
    expect(rendered.url.protocol).toBe('https:');
  });

  it('get-account uses profile "bank" and {{context.accountId}}, as the README describes', () => {
    const path = join(NODES_DIR, 'get-account.json');
    const node = validateDocument<NodeDefinition>('node', JSON.parse(readFileSync(path, 'utf8')), path);
    expect(node.tls.profile).toBe('bank');
    expect(node.request.url).toContain('{{context.accountId}}');
    expect(renderRequest(node, context).url.href).toBe('https://localhost:8443/accounts/42');
  });
});
