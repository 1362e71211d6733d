import { Command } from 'commander';
import { Client } from '../client/index.js';
import type { FunctionServerInfo } from '../application-server/index.js';
import { logLevelFromEnv } from '../common/logger.js';
import { SwitchboardError, statusName } from '../protocol/index.js';
import { RoleProcess } from './child-process.js';
import { parseFraction, parseIntIn } from './parse.js';

const CITIES = ['Beijing', 'Shanghai', 'Tokyo', 'London', 'Sydney', 'Nairobi', 'Cairo', 'Reykjavik'];

async function fetchJson<T>(url: string): Promise<T> {
  const res = await fetch(url);
  return (await res.json()) as T;
}

async function waitUntil<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function pad(s: string | number, n: number): string {
  return String(s).padStart(n);
}

export function demoCommand(): Command {
  return new Command('demo')
    .description('start an AS and three FS processes (one made busier), send requests, print who served what')
    .option('--requests <n>', 'requests to send', parseIntIn(1, 1_000_000), 3000)
    .option('--concurrency <n>', 'requests in flight at once', parseIntIn(1, 10_000), 16)
    .option('--busy <fraction>', 'how busy the third FS is kept, 0 to 0.99', parseFraction, 0.6)
    .option('--verbose', "echo the children's warnings", false)
    .action(async (o: { requests: number; concurrency: number; busy: number; verbose: boolean }) => {
      // The children read it: a bad value would only show as children that never start.
      logLevelFromEnv();
      // More workers than requests would only wait: at most one request each is in flight.
      const inFlight = Math.min(o.concurrency, o.requests);
      const procs: RoleProcess[] = [];
      const echo = { echo: o.verbose as boolean };
      const cleanup = async (): Promise<void> => {
        await Promise.all(procs.map((p) => p.stop('SIGTERM', 5000)));
      };
      // Stopped from outside: stop the children too, so that none is left behind.
      process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
      process.once('SIGTERM', () => void cleanup().then(() => process.exit(143)));
      try {
        const as = new RoleProcess('as', ['as', '--port', '0', '--control-port', '0', '--admin-port', '0', '--load-refresh-ms', '200'], echo);
        procs.push(as);
        const listening = await as.waitForLog('application server listening');
        const admin = await as.waitForLog('admin surface listening');
        const base = `http://127.0.0.1:${admin.adminPort as number}`;
        const names = ['fs-1', 'fs-2', 'fs-3-busy'];
        for (const name of names) {
          const args = ['fs', '--as', `127.0.0.1:${listening.controlPort as number}`, '--port', '0', '--plugins', 'echo', 'weather', '--name', name, '--refresh-ms', '200'];
          if (name.endsWith('busy')) args.push('--busy', String(o.busy));
          procs.push(new RoleProcess(name, args, echo));
        }
        process.stdout.write(`AS on 127.0.0.1:${listening.port as number} (control ${listening.controlPort as number}); 3 FSs starting...\n`);
        await waitUntil('three function servers available with load reports', 15_000, async () => {
          const list = await fetchJson<FunctionServerInfo[]>(`${base}/functionservers`);
          return list.length === 3 && list.every((f) => f.state === 'available' && f.load) ? list : undefined;
        });
        const client = await Client.connect({ port: listening.port as number });
        const errors = new Map<string, number>();
        let ok = 0;
        let next = 0;
        const started = performance.now();
        const worker = async (): Promise<void> => {
          while (next < o.requests) {
            const i = next++;
            try {
              if (i % 10 === 0) await client.call(102, {});
              else if (i % 3 === 0) await client.call(1, { i });
              else await client.call(101, { city: CITIES[i % CITIES.length], days: 1 + (i % 7) });
              ok++;
            } catch (err) {
              const name = err instanceof SwitchboardError ? statusName(err.status) : String(err);
              errors.set(name, (errors.get(name) ?? 0) + 1);
            }
          }
        };
        await Promise.all(Array.from({ length: inFlight }, worker));
        const seconds = (performance.now() - started) / 1000;
        await client.close();
        const list = await fetchJson<FunctionServerInfo[]>(`${base}/functionservers`);
        const total = list.reduce((n, f) => n + f.served, 0) || 1;
        process.stdout.write(`\n${o.requests} requests, ${inFlight} in flight, ${seconds.toFixed(2)} s, ${Math.round(o.requests / seconds)} req/s, ok ${ok}\n\n`);
        process.stdout.write(`${'function server'.padEnd(16)}${pad('served', 8)}${pad('share', 8)}${pad('cpu', 7)}${pad('elu', 7)}${pad('load', 7)}  state\n`);
        for (const f of list.sort((a, b) => a.name.localeCompare(b.name))) {
          const l = f.load;
          process.stdout.write(
            `${f.name.padEnd(16)}${pad(f.served, 8)}${pad(`${((100 * f.served) / total).toFixed(1)}%`, 8)}${pad(l ? l.cpu.toFixed(2) : '-', 7)}${pad(l ? l.elu.toFixed(2) : '-', 7)}${pad(f.loadScore.toFixed(2), 7)}  ${f.state}\n`,
          );
        }
        if (errors.size > 0) process.stdout.write(`\nerrors: ${[...errors].map(([k, v]) => `${k} ${v}`).join(', ')}\n`);
        await cleanup();
        process.exitCode = errors.size === 0 ? 0 : 1;
      } catch (err) {
        process.stderr.write(`demo failed: ${(err as Error).message}\n`);
        await cleanup();
        process.exitCode = 1;
      }
    });
}
