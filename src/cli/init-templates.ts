/** The files `switchboard init plugin` writes: a plugin package that builds, tests and runs as written. */
export interface ScaffoldVars {
  /** Package and plugin name, such as greeter. */
  name: string;
  /** The first service's key. */
  key: number;
  /** Where the switchboard package is, for a `file:` dependency. */
  switchboardPath: string;
}

const json = (v: unknown): string => `${JSON.stringify(v, null, 2)}\n`;

/** The first service's name is the package name with this after it. */
export const SCAFFOLD_SERVICE_SUFFIX = '.greet';

/** The plugin class's name: each run of letters and digits of `name`, capitalized, then `Plugin` (my-plugin-v2: MyPluginV2Plugin). */
export function pluginClassName(name: string): string {
  const words = name.match(/[A-Za-z0-9]+/g) ?? [];
  const cls = `${words.map((w) => w[0].toUpperCase() + w.slice(1)).join('')}Plugin`;
  return /^[A-Za-z]/.test(cls) ? cls : `P${cls}`;
}

export function scaffoldFiles(v: ScaffoldVars): Record<string, string> {
  const Cls = pluginClassName(v.name);
  return {
    'package.json': json({
      name: v.name,
      version: '0.1.0',
      private: true,
      type: 'module',
      description: `A Switchboard plugin: ${v.name}`,
      // What `switchboard fs --plugins <name>` and callers' imports load once the package is installed.
      exports: { '.': './dist/src/plugin.js', './contracts': './dist/src/contracts.js' },
      scripts: {
        build: 'tsc -p tsconfig.json',
        test: 'npm run build && node --test dist/test/',
        start: `npm run build && switchboard fs --as 127.0.0.1:7101 --port 0 --plugins ./dist/src/plugin.js --name ${v.name}-1`,
      },
      dependencies: { switchboard: `file:${v.switchboardPath}` },
      devDependencies: { typescript: '^5.9.3', '@types/node': '^20.19.0' },
    }),
    'tsconfig.json': json({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        // Plugins are classes with decorators; tsyringe reads constructor types from the metadata.
        experimentalDecorators: true,
        emitDecoratorMetadata: true,
        skipLibCheck: true,
        outDir: 'dist',
        rootDir: '.',
        types: ['node'],
      },
      include: ['src', 'test'],
    }),
    '.gitignore': 'node_modules/\ndist/\n',
    'src/contracts.ts': `import { defineService, z } from 'switchboard';

/**
 * The services of this plugin, shared by the plugin and its callers: the key on the wire, the
 * name people use, and the shapes of the request and the answer.
 */
export const greet = defineService({
  key: ${v.key},
  name: '${v.name}${SCAFFOLD_SERVICE_SUFFIX}',
  idempotent: true,
  timeoutMs: 500,
  request: z.object({
    name: z.string().min(1).max(100),
    lang: z.enum(['en', 'fr']).default('en'),
  }),
  response: z.object({ text: z.string() }),
});
`,
    'src/plugin.ts': `import { Plugin, PluginError, Service, injectable, type BodyOf, type ServiceContext } from 'switchboard';
import { greet } from './contracts.js';

/** A dependency of the plugin, built by the plugin's own container; tests replace it. */
@injectable()
export class Greetings {
  phrase(lang: 'en' | 'fr'): string {
    return lang === 'fr' ? 'Bonjour' : 'Hello';
  }
}

@Plugin({ name: '${v.name}' })
export class ${Cls} {
  #started = false;

  constructor(private readonly greetings: Greetings) {}

  /** Before the FS registers: open connections, load data. A throw stops the FS with this plugin's name. */
  async onStart(): Promise<void> {
    this.#started = true;
  }

  /** After the FS drained: close what onStart opened. */
  async onStop(): Promise<void> {
    this.#started = false;
  }

  @Service(greet)
  greet(body: BodyOf<typeof greet>, _ctx: ServiceContext): { text: string } {
    if (!this.#started) throw new PluginError('NOT_STARTED', 'the plugin has not started');
    if (body.name.toLowerCase() === 'nobody') throw new PluginError('NO_ONE', 'nobody is there to greet');
    return { text: \`\${this.greetings.phrase(body.lang)}, \${body.name}\` };
  }
}
`,
    'test/plugin.test.ts': `import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTestBed, type TestBed } from 'switchboard';
import { greet } from '../src/contracts.js';
import { Greetings, ${Cls} } from '../src/plugin.js';

describe('${v.name}', () => {
  let bed: TestBed;
  before(async () => {
    // The same encode, check, run and decode path as a real function server, in this process.
    bed = await createTestBed({ plugins: [${Cls}] });
  });
  after(() => bed.close());

  it('greets in the language asked', async () => {
    assert.deepEqual(await bed.call(greet, { name: 'Ada' }), { text: 'Hello, Ada' });
    assert.deepEqual(await bed.call(greet, { name: 'Ada', lang: 'fr' }), { text: 'Bonjour, Ada' });
  });

  it('refuses a body the contract does not allow, before the handler runs', async () => {
    await assert.rejects(bed.call(greet, { name: '' }), { code: 'SB_ERR_VALIDATION' });
  });

  it("reaches the caller with the plugin's own code", async () => {
    await assert.rejects(bed.call(greet, { name: 'Nobody' }), { code: 'SB_ERR_SERVICE', serviceCode: 'NO_ONE' });
  });

  it('takes a replacement for a dependency', async () => {
    const fake = { phrase: () => 'Hi' };
    const mocked = await createTestBed({ plugins: [${Cls}], providers: [{ token: Greetings, useValue: fake }] });
    try {
      assert.deepEqual(await mocked.call(greet, { name: 'Ada' }), { text: 'Hi, Ada' });
    } finally {
      await mocked.close();
    }
  });
});
`,
    'README.md': `# ${v.name}

A Switchboard plugin package, made by \`switchboard init plugin\`.

\`\`\`sh
npm install
npm test        # builds, then runs test/ through the in-process test bed
npm start       # builds, then runs a function server with this plugin against an AS on 127.0.0.1:7101
\`\`\`

- \`src/contracts.ts\`: the services (key, name, request and answer schemas). Callers import it too:
  \`client.call(greet, { name: 'Ada' })\` is typed from the schemas.
- \`src/plugin.ts\`: the plugin; \`@Service(greet)\` binds a handler to the contract. The function
  server checks every request against the contract before the handler runs.
- \`test/plugin.test.ts\`: tests through \`createTestBed\`, with a dependency replaced.

Start an application server first (\`switchboard as\`), then \`npm start\`, then
\`switchboard call --service ${v.name}.greet --data '{"name":"Ada"}'\`.
`,
  };
}
