import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { AdminServer, silentLogger } from '../../src/index.js';
import { useHarness, waitForRegistry } from '../fixtures/cluster.js';

/*
 * The dashboard in a real browser (Debian's headless Chromium, driven by playwright-core) against
 * a running AS with FSs: rows appear, and change as FSs are added, drained (with the page's own
 * button) and stopped; the membership log tells of it; the charts get data. A screenshot is kept
 * in test-artifacts/dashboard.png.
 */

const h = useHarness();
const HOST = '127.0.0.1';
const TOKEN = 'dashboard-token-0123456789abcdef';
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const CHROMIUM_PATHS = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/lib/chromium/chromium', '/snap/bin/chromium'];

/** Chromium's path, or an error that says how to install it: a missing browser fails the test, never skips it. */
function chromiumPath(): string {
  const candidates = [process.env.CHROMIUM_PATH, ...CHROMIUM_PATHS].filter((p): p is string => p !== undefined && p !== '');
  const found = candidates.find((p) => existsSync(p));
  if (found === undefined) {
    throw new Error(`no Chromium at ${candidates.join(', ')}: run \`apt-get install -y chromium\` (Debian; .ci/run does it) or set CHROMIUM_PATH to a Chromium binary`);
  }
  return found;
}

const row = (id: string, state?: string): string => `#fs-rows tr[data-id="${id}"]${state ? `[data-state="${state}"]` : ''}`;

async function logLines(page: Page): Promise<string[]> {
  return page.locator('#log li').allTextContents();
}

async function waitForLog(page: Page, pattern: RegExp, what: string): Promise<void> {
  await page
    .locator('#log li', { hasText: pattern })
    .first()
    .waitFor({ timeout: 5000 })
    .catch(async () => {
      throw new Error(`the membership log never showed ${what}; it shows: ${JSON.stringify(await logLines(page))}`);
    });
}

/** Polls `probe` (run here, reading the page) until it holds; fails naming `what`. */
async function until(what: string, probe: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('the dashboard in headless Chromium', () => {
  it('lists the FSs and follows an add, a drain by its button, and stops, with the log and charts live', { timeout: 40_000 }, async () => {
    const executablePath = chromiumPath();
    await h.cluster({ loadRefreshMs: 200 }, [
      { name: 'fs-a', refreshMs: 200 },
      { name: 'fs-b', refreshMs: 200, standby: true },
    ]);
    const admin = new AdminServer(h.as, silentLogger, { token: TOKEN });
    const port = await admin.listen(0, HOST);
    h.defer(() => admin.close());
    const base = `http://${HOST}:${port}`;
    await h.background(2);

    const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
    h.defer(() => browser.close());
    const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (m) => {
      if (m.type() === 'error' && !/401/.test(m.text())) pageErrors.push(m.text());
    });
    const requested: string[] = [];
    page.on('request', (r) => requested.push(r.url()));
    await page.goto(`${base}/`);

    // The page asks for the token; a wrong one is refused and asked for again.
    await page.locator('#token-form').waitFor({ state: 'visible', timeout: 5000 });
    await page.fill('#token', 'not-the-token');
    await page.click('#token-form button[type="submit"]');
    await page.locator('#status', { hasText: /^token refused$/ }).waitFor({ timeout: 5000 });
    await page.locator('#token-form').waitFor({ state: 'visible', timeout: 5000 });
    await page.fill('#token', TOKEN);
    await page.click('#token-form button[type="submit"]');
    await page.waitForSelector(row('fs-a', 'available'), { timeout: 5000 });
    await page.waitForSelector(row('fs-b', 'available'), { timeout: 5000 });
    expect(await page.textContent('#status')).toBe('live');
    const cells = await page.locator(`${row('fs-b')} td`).allTextContents();
    expect(cells.slice(0, 6)).toEqual(['fs-b', expect.stringMatching(/^127\.0\.0\.1:\d+$/), '0', 'standby', 'available', '1/1']);
    // The load columns fill in from the FSs' reports (steadyMonitor: 10% CPU and ELU, 48 MB).
    await page.locator(`${row('fs-a')} td[data-col="cpu"]`, { hasText: /^10%$/ }).waitFor({ timeout: 5000 });
    expect(await page.textContent(`${row('fs-a')} td[data-col="memory"]`)).toBe('48 MB');
    expect(await page.getAttribute(`${row('fs-a')} .pill`, 'class')).toContain('state-available');

    // Add: an FS that registers itself, and one added by address through the API.
    await h.startFs({ name: 'fs-c', refreshMs: 200 });
    await page.waitForSelector(row('fs-c', 'available'), { timeout: 5000 });
    await waitForLog(page, /joined: fs-c/, 'fs-c joining');
    const manual = await h.startFs({ name: 'fs-m', register: false });
    const added = await fetch(`${base}/functionservers`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ host: HOST, port: manual.address().port, name: 'fs-m' }),
    });
    expect(added.status).toBe(201);
    await page.waitForSelector(row('fs-m', 'available'), { timeout: 5000 });
    expect(await page.locator('#fs-rows tr').count()).toBe(4);

    // Drain with the page's own button: the state cell turns, the button becomes undrain.
    await page.click(`${row('fs-a')} button[data-action="drain"]`);
    await page.waitForSelector(row('fs-a', 'draining'), { timeout: 5000 });
    expect(h.as.listFunctionServers().find((f) => f.id === 'fs-a')?.state).toBe('draining');
    expect(await page.textContent(`${row('fs-a')} .pill`)).toBe('draining');
    expect(await page.getAttribute(`${row('fs-a')} .pill`, 'class')).toContain('state-draining');
    await page.locator(`${row('fs-a')} button[data-action="undrain"]`).waitFor({ timeout: 5000 });
    await waitForLog(page, /fs-a: available → draining/, 'fs-a draining');
    await waitForLog(page, /drain fs-a: done/, 'the drain button’s answer');

    // Stops: the FS added by address stays, unavailable (the AS keeps probing it); the registered one leaves.
    await manual.stop();
    await page.waitForSelector(row('fs-m', 'unavailable'), { timeout: 5000 });
    expect(await page.getAttribute(`${row('fs-m')} .pill`, 'class')).toContain('state-unavailable');
    expect(await page.textContent(`${row('fs-m')} td[data-col="connections"]`)).toBe('0/1');
    await waitForLog(page, /fs-m: .* → unavailable/, 'fs-m unavailable');
    const fsC = h.as.listFunctionServers().find((f) => f.id === 'fs-c');
    expect(fsC?.state).toBe('available');
    // Remove with the page's button.
    await page.click(`${row('fs-c')} button[data-action="remove"]`);
    await page.waitForSelector(row('fs-c'), { state: 'detached', timeout: 5000 });
    await waitForLog(page, /left: fs-c \(removed\)/, 'fs-c leaving');
    await waitForRegistry(h.as, (l) => !l.some((f) => f.id === 'fs-c'), 'fs-c to be removed');

    // The charts: requests per second over time, and each FS's load.
    await until(
      'the requests-per-second chart to show three seconds of traffic',
      async () => {
        const pts = ((await page.getAttribute('#rps-chart polyline', 'points')) ?? '').trim().split(/\s+/);
        // y is 79 for zero (80 px high); lower means traffic.
        return pts.length >= 3 && pts.some((p) => Number(p.split(',')[1]) < 78);
      },
      8000,
    );
    // A second with no answer can happen while calls wait out the FS that was stopped: wait for a live one.
    await until('the request rate to show traffic', async () => /^[1-9]\d* req\/s$/.test((await page.textContent('#rps')) ?? ''), 5000);
    expect(Number((await page.textContent(`${row('fs-b')} td[data-col="served"]`)) ?? '0') + Number((await page.textContent(`${row('fs-a')} td[data-col="served"]`)) ?? '0')).toBeGreaterThan(0);
    const spark = (await page.getAttribute(`${row('fs-a')} svg.spark polyline`, 'points')) ?? '';
    expect(spark.trim().split(/\s+/).length).toBeGreaterThan(2);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: `${ARTIFACTS}dashboard.png`, fullPage: true });
    expect(existsSync(`${ARTIFACTS}dashboard.png`)).toBe(true);

    // Everything the page loaded came from the AS itself (no CDN), and nothing went wrong in it.
    expect(requested.filter((u) => !u.startsWith(base))).toEqual([]);
    expect(pageErrors).toEqual([]);
  });
});
