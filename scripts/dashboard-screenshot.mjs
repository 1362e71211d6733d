// Takes the README's picture of the dashboard: starts an AS and three FSs as processes of the built
// CLI, sends traffic that rises and falls, drains one FS part way, keeps the dashboard open in
// headless Chromium for about 20 s, and saves docs/images/dashboard.png.
//
//   npm run build && node scripts/dashboard-screenshot.mjs [--seconds 20] [--out docs/images/dashboard.png]
//
// Needs Chromium (Debian: apt-get install -y chromium) or CHROMIUM_PATH.
/* global document */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = resolve(ROOT, 'dist/cli/main.js');
const CHROMIUM_PATHS = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/lib/chromium/chromium', '/snap/bin/chromium'];
const CITIES = ['Beijing', 'Shanghai', 'Tokyo', 'London', 'Sydney', 'Nairobi', 'Cairo', 'Reykjavik'];

const { values: args } = parseArgs({ options: { seconds: { type: 'string', default: '20' }, out: { type: 'string', default: 'docs/images/dashboard.png' } } });
const seconds = Number(args.seconds);
const out = resolve(ROOT, args.out);

function fail(message) {
  console.error(`dashboard-screenshot: ${message}`);
  process.exit(1);
}

if (!existsSync(CLI)) fail(`${CLI} is missing: run npm run build first`);
const chromiumPath = [process.env.CHROMIUM_PATH, ...CHROMIUM_PATHS].find((p) => p && existsSync(p));
if (!chromiumPath) fail(`no Chromium at ${CHROMIUM_PATHS.join(', ')}: run apt-get install -y chromium, or set CHROMIUM_PATH`);
const { Client } = await import(resolve(ROOT, 'dist/client/index.js'));

/** A CLI process whose JSON log lines can be waited for. */
function role(label, cliArgs) {
  const child = spawn(process.execPath, [CLI, ...cliArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = [];
  const waiters = [];
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  createInterface({ input: child.stdout }).on('line', (text) => {
    let line;
    try {
      line = JSON.parse(text);
    } catch {
      return;
    }
    lines.push(line);
    for (const w of [...waiters]) if (w.test(line)) w.resolve(line);
  });
  const exited = new Promise((r) => child.once('exit', r));
  return {
    label,
    /** The first log line (past or future) whose message starts with `prefix`. */
    waitFor(prefix, timeoutMs = 15_000) {
      const test = (l) => typeof l.msg === 'string' && l.msg.startsWith(prefix);
      const seen = lines.find(test);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolveLine, reject) => {
        const timer = setTimeout(() => reject(new Error(`${label} did not log "${prefix}..." within ${timeoutMs} ms; stderr: ${stderr.slice(0, 500)}`)), timeoutMs);
        const w = {
          test,
          resolve: (l) => {
            clearTimeout(timer);
            waiters.splice(waiters.indexOf(w), 1);
            resolveLine(l);
          },
        };
        waiters.push(w);
        void exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`${label} exited (${code}) before logging "${prefix}..."; stderr: ${stderr.slice(0, 500)}`));
        });
      });
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const procs = [];
let browser;
let client;

async function main() {
  const as = role('as', ['as', '--port', '0', '--control-port', '0', '--admin-port', '0', '--load-refresh-ms', '500']);
  procs.push(as);
  const listening = await as.waitFor('application server listening');
  const adminLine = await as.waitFor('admin surface listening');
  const base = `http://127.0.0.1:${adminLine.adminPort}`;

  // The page first, so that its log shows the FSs joining.
  browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
  page.on('pageerror', (err) => console.error(`page error: ${err.message}`));
  await page.goto(`${base}/`);
  await page.waitForFunction(() => document.getElementById('status')?.textContent === 'live', undefined, { timeout: 10_000 });

  const fss = [
    ['fs-1', []],
    ['fs-2', ['--busy', '0.35']],
    ['fs-3', ['--standby']],
  ];
  for (const [name, extra] of fss) {
    const fs = role(name, ['fs', '--as', `127.0.0.1:${listening.controlPort}`, '--port', '0', '--plugins', 'echo', 'weather', '--name', name, '--refresh-ms', '500', ...extra]);
    procs.push(fs);
    await fs.waitFor('registered');
  }
  await page.waitForFunction(() => document.querySelectorAll('#fs-rows tr[data-state="available"]').length === 3, undefined, { timeout: 10_000 });
  console.log(`AS at ${base}: three FSs available; ${seconds} s of traffic`);

  // Traffic that rises and falls: between 1 and 8 callers at a time, on a 15 s wave.
  client = await Client.connect({ port: listening.port });
  const started = Date.now();
  let stopped = false;
  let calls = 0;
  let errors = 0;
  const lane = async (i) => {
    while (!stopped) {
      const t = (Date.now() - started) / 1000;
      const active = 1 + Math.round(7 * (0.5 - 0.5 * Math.cos((2 * Math.PI * t) / 15)));
      if (i >= active) {
        await sleep(100);
        continue;
      }
      try {
        if (calls % 3 === 0) await client.call(1, { i, calls });
        else await client.call(101, { city: CITIES[calls % CITIES.length], days: 1 + (calls % 7) });
        calls++;
      } catch {
        errors++;
        await sleep(20);
      }
      // Keep the rate modest, so the picture shows the wave and not one saturated line.
      await sleep(2);
    }
  };
  const drain = (async () => {
    await sleep(seconds * 600);
    const res = await fetch(`${base}/functionservers/fs-2/drain`, { method: 'POST' });
    if (!res.ok) throw new Error(`drain fs-2: ${res.status} ${await res.text()}`);
  })();
  const lanes = Promise.all(Array.from({ length: 8 }, (_, i) => lane(i)));
  await drain;
  await page.waitForSelector('#fs-rows tr[data-id="fs-2"][data-state="draining"]', { timeout: 5000 });
  await sleep(Math.max(0, started + seconds * 1000 - Date.now()));

  // Taken while the traffic still flows, so the last figures are live ones.
  mkdirSync(dirname(out), { recursive: true });
  await page.screenshot({ path: out, fullPage: true });
  stopped = true;
  await lanes;
  console.log(`${calls} calls (${errors} failed); saved ${out}`);
}

try {
  await main();
} catch (err) {
  console.error(`dashboard-screenshot failed: ${err.stack ?? err}`);
  process.exitCode = 1;
} finally {
  await client?.close().catch(() => undefined);
  await browser?.close().catch(() => undefined);
  await Promise.all(procs.reverse().map((p) => p.stop()));
}
