import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { FAILURE_CATEGORIES } from '../../src/failures/categories.js';
import { FINDING_CODES } from '../../src/pki/findings.js';
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

describe('README code tables', () => {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.split('## Error and finding codes')[1]?.split('\n## ')[0] ?? '';
  const listed = (header: string): string[] => {
    const table = section.split(`| ${header} | meaning |`)[1]?.split('\n\n')[0] ?? '';
    return [...table.matchAll(/^\| `([A-Z_0-9]+)` \|/gm)].map((m) => m[1] as string);
  };

  it('lists every error code, in code order', () => {
    expect(listed('error code')).toEqual(Object.keys(ERROR_CODES));
  });

  it('lists every finding code, in code order', () => {
    expect(listed('finding code')).toEqual(Object.keys(FINDING_CODES));
  });

  it('every SVCNODE_* code used in the sources is a declared error code', () => {
    const used = new Set<string>();
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) walk(path);
        else if (entry.name.endsWith('.ts')) for (const m of readFileSync(path, 'utf8').matchAll(/'(SVCNODE_[A-Z_0-9]+)'/g)) used.add(m[1] as string);
      }
    };
    walk(join(REPO_ROOT, 'src'));
    expect([...used].filter((code) => !Object.hasOwn(ERROR_CODES, code))).toEqual([]);
  });
});
