import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// docs/security.md section 4 names, for each defence, the tests that fail if it is removed: a
// test file path in backticks, then one or more exact test titles in backticks. This keeps those
// names true: each file exists and holds each title, and a row with no test says `none yet`.

/** Rows of the defences tables marked `none yet`: a new test-less row must raise this on purpose. */
const ROWS_WITHOUT_A_TEST = 0;

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DOC = 'docs/security.md';
const HEADER = ['attack or risk', 'defence', 'setting', 'test'];
const TEST_FILE = /^test\/[\w./-]+\.test\.ts$/;
const REPO_PATH = /^(src|scripts|test)\/[\w./-]+\.(ts|mjs|js)$/;

interface Citation {
  file: string;
  title: string;
}

interface DefenceRow {
  /** 1-based line in the doc. */
  line: number;
  risk: string;
  cells: string[];
  citations: Citation[];
  noneYet: boolean;
  /** Titles given before any file path: a mistake. */
  orphans: string[];
}

function read(path: string): string {
  return readFileSync(ROOT + path, 'utf8');
}

/** The cells of one markdown table line; `\|` does not split. */
function cellsOf(line: string): string[] {
  const parts = line.trim().replace(/^\|/, '').replace(/\|$/, '').split(/(?<!\\)\|/);
  return parts.map((p) => p.trim());
}

/** The text of each `code span` in `text`. */
function codeSpans(text: string): string[] {
  return [...text.matchAll(/`([^`]+)`/g)].map((m) => m[1]);
}

/** Every row of every table in the doc whose header is the defences table's. */
function defenceRows(doc: string): DefenceRow[] {
  const lines = doc.split('\n');
  const rows: DefenceRow[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i].startsWith('|') || cellsOf(lines[i]).join('|') !== HEADER.join('|')) continue;
    // Skip the header and its --- line; the table runs until the first line that is not a row.
    for (i += 2; i < lines.length && lines[i].startsWith('|'); i++) {
      const cells = cellsOf(lines[i]);
      const test = cells[3] ?? '';
      const citations: Citation[] = [];
      const orphans: string[] = [];
      let file: string | undefined;
      for (const span of codeSpans(test)) {
        if (span === 'none yet') continue;
        if (TEST_FILE.test(span)) file = span;
        else if (file === undefined) orphans.push(span);
        else citations.push({ file, title: span });
      }
      rows.push({ line: i + 1, risk: cells[0], cells, citations, noneYet: codeSpans(test).includes('none yet'), orphans });
    }
  }
  return rows;
}

/** Whether `source` holds `title` as a whole quoted string, not under it.skip, it.todo or it.fails. */
function holdsTitle(source: string, title: string): { found: boolean; disabled: boolean } {
  for (const q of ["'", '"', '`']) {
    const at = source.indexOf(q + title + q);
    if (at < 0) continue;
    const before = source.slice(Math.max(0, at - 40), at);
    return { found: true, disabled: /\b(it|test|describe)\.(skip|todo|fails)\(\s*$/.test(before) };
  }
  return { found: false, disabled: false };
}

describe('docs/security.md defences table', () => {
  const doc = read(DOC);
  const rows = defenceRows(doc);
  const where = (r: DefenceRow): string => `${DOC}:${r.line} (${r.risk})`;

  it('is found, and every row has its four cells', () => {
    expect(rows.length, 'rows in the defences tables').toBeGreaterThanOrEqual(40);
    expect(rows.filter((r) => r.cells.length !== HEADER.length || r.cells.some((c) => c === '')).map(where)).toEqual([]);
  });

  it('cites only test files that exist, each holding every title cited from it', () => {
    const sources = new Map<string, string | undefined>();
    const source = (file: string): string | undefined => {
      if (!sources.has(file)) sources.set(file, existsSync(ROOT + file) ? read(file) : undefined);
      return sources.get(file);
    };
    const problems: string[] = [];
    for (const r of rows) {
      for (const c of r.citations) {
        const text = source(c.file);
        if (text === undefined) {
          problems.push(`${where(r)}: ${c.file} does not exist`);
          continue;
        }
        const { found, disabled } = holdsTitle(text, c.title);
        if (!found) problems.push(`${where(r)}: ${c.file} has no test titled "${c.title}"`);
        else if (disabled) problems.push(`${where(r)}: "${c.title}" in ${c.file} is skipped, a todo or expected to fail`);
      }
      for (const o of r.orphans) problems.push(`${where(r)}: "${o}" is not preceded by a test file path`);
    }
    expect(problems).toEqual([]);
  });

  it('gives every row a test, or marks it `none yet` (and then cites none)', () => {
    expect(rows.filter((r) => !r.noneYet && r.citations.length === 0).map(where), 'rows with an empty test cell').toEqual([]);
    expect(rows.filter((r) => r.noneYet && r.citations.length > 0).map(where), 'rows both marked none yet and citing tests').toEqual([]);
  });

  it(`has exactly ${ROWS_WITHOUT_A_TEST} rows marked none yet`, () => {
    const untested = rows.filter((r) => r.noneYet).map(where);
    expect(untested.length, `rows marked none yet:\n${untested.join('\n')}`).toBe(ROWS_WITHOUT_A_TEST);
  });

  it('names only source, script and test files that exist', () => {
    const missing = [...new Set(codeSpans(doc).filter((s) => REPO_PATH.test(s)))].filter((p) => !existsSync(ROOT + p));
    expect(missing).toEqual([]);
  });
});
