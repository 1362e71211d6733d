// One plain-text table: what was measured, its value, the rule it is held to, and the verdict.

/** A row: `rule` is "must …" (breaks the run), "should …" (warns) or a note; `pass` undefined means no verdict. */
export function row(metric, value, rule = '', pass = undefined) {
  const must = rule.startsWith('must');
  const verdict = pass === undefined ? '' : pass ? 'ok' : must ? 'BROKEN' : 'warn';
  return { metric, value: String(value), rule, verdict, broken: must && pass === false };
}

export function section(title) {
  return { section: title };
}

export function renderTable(rows) {
  const cols = ['metric', 'value', 'rule', 'verdict'];
  const data = rows.filter((r) => !r.section);
  const width = cols.map((c) => Math.max(c.length, ...data.map((r) => r[c].length)));
  const line = (cells) => `| ${cells.map((c, i) => c.padEnd(width[i])).join(' | ')} |`;
  const rule = `+${width.map((w) => '-'.repeat(w + 2)).join('+')}+`;
  const out = [rule, line(cols), rule];
  for (const r of rows) {
    if (r.section) {
      const total = width.reduce((a, w) => a + w + 3, -3);
      out.push(`| ${`-- ${r.section} `.padEnd(total, '-')} |`);
    } else {
      out.push(line(cols.map((c) => r[c])));
    }
  }
  out.push(rule);
  return out.join('\n');
}

export function ms(v) {
  return v === undefined || Number.isNaN(v) ? 'never' : `${Math.round(v)} ms`;
}

export function secs(v) {
  return `${(v / 1000).toFixed(2)} s`;
}
