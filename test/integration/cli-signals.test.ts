import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ECHO_DELAYED } from '../../src/plugins/samples/echo-plugin.js';
import { ChannelClosedError } from '../../src/index.js';
import { DIST_CLI, HOST, connectClient, spawnFs, startAs, useCleanup, waitFor, waitForState } from '../resilience/helpers.js';

// SIGTERM drains an FS; a second stop signal during the drain exits at once (docs/cli.md).
const c = useCleanup();

describe('switchboard fs and stop signals', () => {
  for (const [first, second, code] of [
    ['SIGTERM', 'SIGTERM', 143],
    ['SIGTERM', 'SIGINT', 130],
  ] as const) {
    it(`${first} starts the drain; ${second} during it exits ${code} at once, saying so`, async () => {
      expect(existsSync(DIST_CLI), 'run `npm run build` first (npm test does)').toBe(true);
      const { as, port, controlPort } = await startAs(c, { heartbeatMs: 500 });
      const fs = spawnFs(c, 'fs-sig', ['--as', `${HOST}:${controlPort}`, '--port', '0', '--plugins', 'echo', '--drain-timeout-ms', '60000']);
      await waitForState(as, 'fs-sig', 'available', 10_000);
      const client = await connectClient(c, port);
      // Holds the drain open for 20 s: only the second signal can end the process before then.
      const held = client.call(ECHO_DELAYED, { ms: 20_000 }, { timeoutMs: 30_000 }).catch((e: unknown) => e);
      await waitFor(() => (as.listFunctionServers()[0]?.inflight ?? 0) === 1, 'the call to reach the FS');
      fs.signal(first);
      await fs.waitForLog('draining', 5000);
      fs.signal(second);
      expect(await fs.exited()).toBe(code);
      expect(fs.lines.find((l) => l.msg === 'second stop signal: exiting now, without finishing the drain')).toMatchObject({ level: 40, signal: second });
      expect(await held).toBeInstanceOf(ChannelClosedError);
    });
  }
});
