import 'reflect-metadata';
import { existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { RoleProcess } from '../../src/cli/child-process.js';
import { Plugin, PluginStartError, Service, ServiceNotFoundError, defineService, type ApplicationServer, type Client, type FunctionServerInfo } from '../../src/index.js';
import { useHarness, waitFor, withTimeout } from '../fixtures/cluster.js';

const HOST = '127.0.0.1';
const DIST_CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const DIST_INDEX = fileURLToPath(new URL('../../dist/index.js', import.meta.url));

const h = useHarness();

const ANSWER = 8001;
const SLOW = 8002;
const OLD_ONLY = 8003;
const NEW_ONLY = 8004;
/** Bound to a contract in both versions: the FS's own name must not clash with itself after a reload. */
const answer = defineService({ key: ANSWER, name: 'reload.answer', idempotent: true });

function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

interface Version {
  plugin: new () => object;
  /** Opens the gate the version's slow handler waits on. */
  release: () => void;
  /** Resolves when the version's slow handler is running. */
  slowEntered: Promise<void>;
}

/** One version of a plugin module: the same plugin name and keys, answers carrying `v`; version 1 has OLD_ONLY, later ones NEW_ONLY. */
function version(v: number, events: string[], opts: { failStart?: boolean } = {}): Version {
  const g = gate();
  const entered = gate();
  h.defer(() => g.open());
  class Reloadable {
    async onStart(): Promise<void> {
      events.push(`onStart v${v}`);
      if (opts.failStart) throw Object.assign(new Error('RELOAD_CONFIG is missing'), { code: 'NO_CONFIG' });
    }
    async onStop(): Promise<void> {
      events.push(`onStop v${v}`);
    }
    answer(): { v: number } {
      return { v };
    }
    async slow(): Promise<{ v: number }> {
      events.push(`slow v${v} started`);
      entered.open();
      await g.promise;
      events.push(`slow v${v} ended`);
      return { v };
    }
    only(): { v: number; only: true } {
      return { v, only: true };
    }
  }
  Service(answer)(Reloadable.prototype, 'answer', Object.getOwnPropertyDescriptor(Reloadable.prototype, 'answer')!);
  Service(SLOW)(Reloadable.prototype, 'slow', Object.getOwnPropertyDescriptor(Reloadable.prototype, 'slow')!);
  Service(v === 1 ? OLD_ONLY : NEW_ONLY)(Reloadable.prototype, 'only', Object.getOwnPropertyDescriptor(Reloadable.prototype, 'only')!);
  Plugin({ name: 'reloadable' })(Reloadable);
  return { plugin: Reloadable, release: g.open, slowEntered: entered.promise };
}

/** Resolves on the next 'fs-changed' event for `id`. */
function nextChange(as: ApplicationServer, id: string, timeoutMs = 3000): Promise<FunctionServerInfo> {
  return withTimeout(
    new Promise<FunctionServerInfo>((resolve) => {
      const on = (info: FunctionServerInfo): void => {
        if (info.id !== id) return;
        as.off('fs-changed', on);
        resolve(info);
      };
      as.on('fs-changed', on);
    }),
    timeoutMs,
    `the AS to see ${id} change its services`,
  );
}

/** Lanes that call ANSWER back to back, keeping every answer's version in order, until stopped. */
function steadyLoad(client: Client, lanes: number): { ok(): number; stop(): Promise<{ versions: number[][]; errors: string[] }> } {
  let stopped = false;
  let ok = 0;
  const versions: number[][] = Array.from({ length: lanes }, () => []);
  const errors: string[] = [];
  const lane = async (l: number): Promise<void> => {
    for (let i = 0; !stopped && i < 20_000; i++) {
      try {
        const r = await client.call(answer, undefined, { timeoutMs: 3000 });
        versions[l].push((r as { v: number }).v);
        ok++;
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
  };
  const running = Promise.all(Array.from({ length: lanes }, (_, l) => lane(l)));
  return {
    ok: () => ok,
    stop: async () => {
      stopped = true;
      await running;
      return { versions, errors };
    },
  };
}

describe('fs.replacePlugins', () => {
  it('under steady load: no call fails, running calls finish on the old code, new ones get the new, the AS sees one FS change, old onStop runs last', async () => {
    const events: string[] = [];
    const v1 = version(1, events);
    const v2 = version(2, events);
    const [fs] = await h.cluster({ heartbeatMs: 500 }, [{ name: 'reloader', plugins: [v1.plugin], heartbeatMs: 500, drainTimeoutMs: 5000 }]);
    // Teardown runs in reverse: open the gates before the FS is asked to drain (if the test failed midway).
    h.defer(() => {
      v1.release();
      v2.release();
    });
    const as = h.as;
    const client = await h.client();
    expect(await client.call(answer, undefined)).toEqual({ v: 1 });
    expect(await client.call(OLD_ONLY)).toEqual({ v: 1, only: true });
    const idBefore = as.listFunctionServers().map((f) => f.id);

    const load = steadyLoad(client, 4);
    h.defer(() => load.stop());
    await waitFor(() => load.ok() >= 40, 'load to flow on the old code');
    const slowOld = client.call(SLOW, undefined, { timeoutMs: 10_000 });
    slowOld.catch(() => undefined); // awaited below; not unhandled if the test fails first
    await v1.slowEntered;

    const changed = nextChange(as, 'reloader');
    let replaced = false;
    const replacing = fs.replacePlugins([v2.plugin]).then(() => (replaced = true));
    const info = await changed;
    expect(info.serviceKeys).toEqual([ANSWER, SLOW, NEW_ONLY]);
    expect(info.state).toBe('available');

    // New calls run the new code; the new key is routable; the removed one is unknown to the AS.
    expect(await client.call(answer, undefined)).toEqual({ v: 2 });
    expect(await client.call(NEW_ONLY)).toEqual({ v: 2, only: true });
    const gone = await client.call(OLD_ONLY).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(gone).toBeInstanceOf(ServiceNotFoundError);
    // The AS's own answer (it no longer routes the key), not the FS's.
    expect((gone as Error).message).toMatch(/no function server serves service 8003/);
    // The same FS, changed: one entry, the same id, still available.
    expect(as.listFunctionServers().map((f) => [f.id, f.state])).toEqual([['reloader', 'available']]);
    expect(as.listFunctionServers().map((f) => f.id)).toEqual(idBefore);

    // The slow call still runs on the old code, which therefore has not been stopped.
    const okAtChange = load.ok();
    await waitFor(() => load.ok() >= okAtChange + 40, 'load to flow on the new code');
    expect(replaced).toBe(false);
    expect(events).toEqual(['onStart v1', 'slow v1 started', 'onStart v2']);

    v1.release();
    expect(await slowOld).toEqual({ v: 1 });
    await withTimeout(replacing, 3000, 'replacePlugins to finish');
    expect(events).toEqual(['onStart v1', 'slow v1 started', 'onStart v2', 'slow v1 ended', 'onStop v1']);

    // A slow call now runs the new code.
    const slowNew = client.call(SLOW, undefined, { timeoutMs: 10_000 });
    await v2.slowEntered;
    v2.release();
    expect(await slowNew).toEqual({ v: 2 });

    const { versions, errors } = await load.stop();
    expect(errors).toEqual([]);
    for (const lane of versions) {
      // Each lane saw the old answer, then the new one, and never the old again.
      expect(lane[0]).toBe(1);
      expect(lane[lane.length - 1]).toBe(2);
      const firstNew = lane.indexOf(2);
      expect(lane.slice(firstNew).every((v) => v === 2)).toBe(true);
    }
    expect(fs.table.pluginNames()).toEqual(['reloadable']);
  });

  it('a replacement whose onStart throws changes nothing: it rejects, the old code keeps serving and is not stopped', async () => {
    const events: string[] = [];
    const v1 = version(1, events);
    const broken = version(2, events, { failStart: true });
    const [fs] = await h.cluster({ heartbeatMs: 500 }, [{ name: 'steady', plugins: [v1.plugin], heartbeatMs: 500 }]);
    let changes = 0;
    h.as.on('fs-changed', () => changes++);
    const client = await h.client();
    const before = fs.table;

    const err = await fs.replacePlugins([broken.plugin]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PluginStartError);
    expect(err).toMatchObject({ code: 'SB_ERR_PLUGIN_START', pluginName: 'reloadable' });
    expect((err as Error).message).toMatch(/failed in its onStart \(NO_CONFIG\)/);

    expect(fs.table).toBe(before);
    expect(await client.call(answer, undefined)).toEqual({ v: 1 });
    expect(await client.call(OLD_ONLY)).toEqual({ v: 1, only: true });
    await expect(client.call(NEW_ONLY)).rejects.toBeInstanceOf(ServiceNotFoundError);
    expect(events).toEqual(['onStart v1', 'onStart v2']);
    expect(changes).toBe(0);
    expect(h.as.listFunctionServers().map((f) => [f.id, f.state, f.serviceKeys])).toEqual([['steady', 'available', [ANSWER, SLOW, OLD_ONLY]]]);
  });

  it('a replacement whose constructor throws changes nothing either', async () => {
    const events: string[] = [];
    const v1 = version(1, events);
    const [fs] = await h.cluster({ heartbeatMs: 500 }, [{ name: 'steady-2', plugins: [v1.plugin], heartbeatMs: 500 }]);
    @Plugin({ name: 'reloadable' })
    class Throws {
      constructor() {
        throw new Error('bad build');
      }
      @Service(ANSWER)
      answer(): number {
        return 3;
      }
    }
    await expect(fs.replacePlugins([Throws])).rejects.toMatchObject({ code: 'SB_ERR_PLUGIN_START', message: expect.stringMatching(/constructor/) });
    const client = await h.client();
    expect(await client.call(answer, undefined)).toEqual({ v: 1 });
    expect(events).toEqual(['onStart v1']);
  });
});

describe('switchboard fs --watch (child process)', () => {
  /** A plugin module serving key 8101 with `text`; written next to the old one and renamed over it, as editors do. */
  function writePlugin(file: string, text: string): void {
    const src = `import { Plugin, Service } from ${JSON.stringify(pathToFileURL(DIST_INDEX).href)};
export class Watched {
  answer() { return ${JSON.stringify(text)}; }
}
Service(8101, { idempotent: true })(Watched.prototype, 'answer');
Plugin({ name: 'watched' })(Watched);
`;
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, src);
    renameSync(tmp, file);
  }

  it('reloads a changed module (the AS sees the change, new calls get the new answer) and keeps the old code when the new file is broken', async () => {
    expect(existsSync(DIST_CLI), 'run `npm run build` first (npm test does)').toBe(true);
    const dir = mkdtempSync(join(tmpdir(), 'sb-plugin-watch-'));
    h.defer(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'plugin-watched.mjs');
    writePlugin(file, 'first answer');

    const as = await h.startAs({ heartbeatMs: 500 });
    const available = new Promise<void>((r) => as.on('fs-state', (i) => i.id === 'watch-fs' && i.state === 'available' && r()));
    const fs = new RoleProcess(
      'watch-fs',
      ['fs', '--name', 'watch-fs', '--host', HOST, '--port', '0', '--as', `${HOST}:${h.controlPort}`, '--heartbeat-ms', '500', '--watch', '--plugins', file],
      { cliPath: DIST_CLI },
    );
    h.defer(() => fs.stop('SIGKILL', 2000));
    await fs.waitForLog('watching plugin modules; a change reloads them');
    await withTimeout(available, 10_000, 'the FS child to be available');
    const client = await h.client();
    expect(await client.call(8101)).toBe('first answer');

    const changed = nextChange(as, 'watch-fs', 10_000);
    writePlugin(file, 'second answer');
    await changed;
    // The FS logs before it sends CHANGED, but its stdout pipe and the AS's socket are read in
    // whichever order the test's event loop gets them.
    await waitFor(() => fs.lines.some((l) => l.msg === 'plugins reloaded'), 'the FS to log the reload', 5000, 20);
    expect(fs.lines.filter((l) => l.msg === 'plugins reloaded')).toHaveLength(1);
    expect(await client.call(8101)).toBe('second answer');

    writeFileSync(file, 'export class Watched {\n  answer() { return "half written"\n');
    await waitFor(() => fs.lines.some((l) => String(l.msg).startsWith('plugin reload failed')), 'the FS to log that the reload failed', 10_000, 20);
    const failure = fs.lines.find((l) => String(l.msg).startsWith('plugin reload failed'))!;
    expect(failure.code).toBe('SB_ERR_PLUGIN_LOAD');
    expect(String(failure.err)).toContain('plugin-watched.mjs');
    expect(await client.call(8101)).toBe('second answer');
    expect(fs.lines.filter((l) => l.msg === 'plugins reloaded')).toHaveLength(1);
    expect(as.listFunctionServers().map((f) => [f.id, f.state])).toEqual([['watch-fs', 'available']]);
  });
});
