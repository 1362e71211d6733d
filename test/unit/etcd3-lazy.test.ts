import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

// In a fresh process (a test worker may have loaded etcd3 already): import the built package, then
// report whether etcd3 is among the loaded CommonJS modules before and after making an etcd client.
const PROBE = `
import { createRequire } from 'node:module';
const cache = createRequire(import.meta.url).cache;
const loaded = () => Object.keys(cache).some((p) => p.includes('/node_modules/etcd3/'));
const sb = await import('./dist/index.js');
const atImport = loaded();
const { createEtcdClient } = await import('./dist/discovery/etcd-registry.js');
const client = createEtcdClient(['127.0.0.1:1']);
const afterClient = loaded();
client.close();
console.log(JSON.stringify({ exports: Object.keys(sb).length, atImport, afterClient }));
`;

function probe(): Promise<{ exports: number; atImport: boolean; afterClient: boolean }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', PROBE], { cwd: ROOT, timeout: 15_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout.trim().split('\n').pop() as string));
    });
  });
}

describe('etcd3 is loaded on first use', () => {
  it('importing the package does not load etcd3 (gRPC, protobufjs); making an etcd client does', async () => {
    const r = await probe();
    expect(r.exports).toBeGreaterThan(10);
    expect(r.atImport).toBe(false);
    expect(r.afterClient).toBe(true);
  });
});
