import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { MAX_PLUGIN_NAME, normalizePluginName, pluginNameFrom } from '../../src/cli/init-command.js';
import { pluginClassName, scaffoldFiles } from '../../src/cli/init-templates.js';

describe('init plugin names', () => {
  it('normalizes: lower case, one - for each run of other characters, none at either end', () => {
    expect(normalizePluginName('My Plugin_V2!')).toBe('my-plugin-v2');
    expect(normalizePluginName('foo-')).toBe('foo');
    expect(normalizePluginName('--a__b  c--')).toBe('a-b-c');
    expect(normalizePluginName('greeter')).toBe('greeter');
    expect(normalizePluginName('Été 2')).toBe('t-2');
  });

  it('builds the class name from letters and digits only', () => {
    expect(pluginClassName('my-plugin-v2')).toBe('MyPluginV2Plugin');
    expect(pluginClassName('foo')).toBe('FooPlugin');
    expect(pluginClassName('a-1-b')).toBe('A1BPlugin');
  });

  it('refuses names that cannot make a package: no letter first, nothing left, a dependency, too long for the service name', () => {
    expect(() => pluginNameFrom('9lives', '--name')).toThrow(/does not start with a letter/);
    expect(() => pluginNameFrom('---', '--name')).toThrow(/has no letter or digit/);
    expect(() => pluginNameFrom('TypeScript', '--name')).toThrow(/a package this one depends on/);
    expect(() => pluginNameFrom('a'.repeat(MAX_PLUGIN_NAME + 1), '--name')).toThrow(/at most 122/);
    expect(pluginNameFrom('a'.repeat(MAX_PLUGIN_NAME), '--name')).toHaveLength(122);
    expect(MAX_PLUGIN_NAME + '.greet'.length).toBe(128);
  });

  it('every TypeScript file of the scaffold parses, whatever name it was given', () => {
    for (const raw of ['My Plugin_V2!', 'foo-', 'x', 'a1-b2-c3', 'z'.repeat(MAX_PLUGIN_NAME)]) {
      const name = pluginNameFrom(raw, '--name');
      const files = scaffoldFiles({ name, key: 301, switchboardPath: '/opt/switchboard' });
      for (const [rel, text] of Object.entries(files)) {
        if (!rel.endsWith('.ts')) continue;
        const out = ts.transpileModule(text, { reportDiagnostics: true, fileName: rel, compilerOptions: { experimentalDecorators: true } });
        expect((out.diagnostics ?? []).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')), `${raw}: ${rel}`).toEqual([]);
      }
      expect(JSON.parse(files['package.json']).name).toBe(name);
    }
  });

  it('the scaffold exports its built plugin and contracts, so `--plugins <name>` loads it once installed', () => {
    const files = scaffoldFiles({ name: 'ledger', key: 301, switchboardPath: '/opt/switchboard' });
    const manifest = JSON.parse(files['package.json']) as { exports: Record<string, string> };
    const tsconfig = JSON.parse(files['tsconfig.json']) as { compilerOptions: { outDir: string; rootDir: string } };
    expect(manifest.exports).toEqual({ '.': './dist/src/plugin.js', './contracts': './dist/src/contracts.js' });
    // Each export is where tsc puts a source the scaffold writes.
    for (const target of Object.values(manifest.exports)) {
      const source = target.replace(`./${tsconfig.compilerOptions.outDir}/`, '').replace(/\.js$/, '.ts');
      expect(Object.keys(files)).toContain(source);
    }
  });
});
