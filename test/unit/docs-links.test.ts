import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// The repository stands alone: every link in its docs goes to a file inside it (or to an anchor),
// never to a path that is not there.
const root = fileURLToPath(new URL('../..', import.meta.url));
const pages = ['README.md', 'bench/README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

describe('links in the docs', () => {
  it.each(pages)('%s links only to files that exist in the repository', (page) => {
    const text = readFileSync(join(root, page), 'utf8').replace(/```[\s\S]*?```/g, '');
    const broken: string[] = [];
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1];
      if (/^[a-z]+:/.test(target) || target.startsWith('#')) continue;
      const path = resolve(dirname(join(root, page)), target.split('#')[0]);
      if (!path.startsWith(root) || !existsSync(path)) broken.push(target);
    }
    expect(broken).toEqual([]);
  });
});
