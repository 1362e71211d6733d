/** Reads a V8 .cpuprofile and lists the functions with the most self time. */
import { readFileSync } from 'node:fs';

export function topFunctions(path, limit = 15) {
  const profile = JSON.parse(readFileSync(path, 'utf8'));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const hits = new Map();
  for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
  const totals = new Map();
  let all = 0;
  for (const [id, n] of hits) {
    const node = byId.get(id);
    const f = node.callFrame;
    if (f.functionName === '(idle)') continue;
    const where = f.url ? `${f.url.replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/')}:${f.lineNumber + 1}` : '';
    const key = `${f.functionName || '(anonymous)'} ${where}`.trim();
    totals.set(key, (totals.get(key) ?? 0) + n);
    all += n;
  }
  return [...totals]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([fn, n]) => ({ fn, selfPct: (100 * n) / all }));
}
