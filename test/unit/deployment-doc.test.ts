import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

/** A Kubernetes object as parsed: read loosely, its shape is what the tests check. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- parsed YAML is checked field by field below
type Manifest = Record<string, any>;

// The Kubernetes example in docs/deployment.md cannot be applied here (no cluster): it is parsed,
// its required fields checked, and every switchboard command line in it run through the built
// CLI's --print-config, which refuses an unknown flag or a bad value.
const doc = readFileSync(new URL('../../docs/deployment.md', import.meta.url), 'utf8');
const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const manifests = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].flatMap((m) =>
  parseAllDocuments(m[1]).map((d) => {
    expect(d.errors, 'YAML errors').toEqual([]);
    return d.toJS() as Manifest;
  }),
);
const byKind = (kind: string): Manifest[] => manifests.filter((m) => m.kind === kind);

describe('the Kubernetes example in docs/deployment.md', () => {
  it('is valid YAML with apiVersion, kind and metadata.name on every object', () => {
    expect(manifests.length).toBeGreaterThanOrEqual(4);
    for (const m of manifests) {
      expect(m.apiVersion, JSON.stringify(m).slice(0, 80)).toEqual(expect.any(String));
      expect(m.kind).toEqual(expect.any(String));
      expect(m.metadata?.name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    }
    expect(new Set(manifests.map((m) => m.kind))).toEqual(new Set(['Secret', 'Service', 'StatefulSet', 'Deployment']));
  });

  it('wires workloads to their labels, the headless Service, readiness to /readyz and a draining preStop', () => {
    const service = byKind('Service')[0];
    expect(service.spec.clusterIP).toBe('None');
    for (const w of [...byKind('StatefulSet'), ...byKind('Deployment')]) {
      expect(w.apiVersion).toBe('apps/v1');
      expect(w.spec.selector.matchLabels).toEqual(w.spec.template.metadata.labels);
      for (const c of w.spec.template.spec.containers) {
        expect(c.image).toEqual(expect.any(String));
        expect(c.readinessProbe).toBeDefined();
        for (const v of c.volumeMounts ?? []) expect(w.spec.template.spec.volumes.map((x: { name: string }) => x.name)).toContain(v.name);
      }
    }
    const as = byKind('StatefulSet')[0];
    expect(as.spec.serviceName).toBe(service.metadata.name);
    expect(service.spec.selector).toEqual(as.spec.template.metadata.labels);
    expect(as.spec.template.spec.containers[0].readinessProbe.httpGet.path).toBe('/readyz');
    const fs = byKind('Deployment')[0];
    expect(fs.spec.template.spec.containers[0].lifecycle.preStop.exec.command.join(' ')).toMatch(/kill -TERM 1/);
    expect(byKind('Secret')[0].stringData).toHaveProperty(['join.secret']);
  });

  it('runs switchboard with flags and values the CLI takes', () => {
    const sample: Record<string, string> = { POD_NAME: 'switchboard-fs-5d9c7-abcde', POD_IP: '10.1.2.3' };
    for (const w of [...byKind('StatefulSet'), ...byKind('Deployment')]) {
      for (const c of w.spec.template.spec.containers) {
        const args = (c.args as string[]).map((a) => a.replace(/\$\((\w+)\)/g, (_, v: string) => sample[v] ?? ''));
        const r = spawnSync(process.execPath, [CLI, ...args, '--print-config'], { encoding: 'utf8', timeout: 20_000 });
        expect(r.stderr, `${c.name}: ${args.join(' ')}`).toBe('');
        expect(r.status).toBe(0);
        expect(JSON.parse(r.stdout)).toEqual(expect.any(Object));
      }
    }
  });
});
