import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FAILURE_CATEGORIES } from '../../src/failures/categories.js';
import { REPO_ROOT } from '../helpers/cli.js';

/** The README's category table is documentation users rely on: keep it in sync with the code. */
describe('README failure-category table', () => {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.split('## Failure categories and exit codes')[1]?.split('\n## ')[0] ?? '';
  const rows = [...section.matchAll(/^\| `([a-z_]+)` \| (\d) \|/gm)].map((m) => [m[1], Number(m[2])] as const);

  it('lists every category exactly once, in code order, with its exit code', () => {
    expect(rows).toEqual(Object.entries(FAILURE_CATEGORIES).map(([name, c]) => [name, c.exitCode]));
  });

});
