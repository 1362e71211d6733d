import 'reflect-metadata';
import { Plugin, Service } from '../../src/index.js';

// Test-only plugins and keys. In-process FSs use the classes below; child FSs load child-plugin.mjs,
// which serves SLOW_IDEMPOTENT (3001), WHO (3003) and HELD_UNTIL_FILE (3005) under the same keys.
export const SLOW_IDEMPOTENT = 3001;
export const BLOB = 3002;
export const WHO = 3003;
export const GATED = 3004;
/** Child FSs only: answers `body.value` once the file `body.path` exists (the test releases it), not idempotent. */
export const HELD_UNTIL_FILE = 3005;

/** Answers with the name of the FS that served the call (in-process FSs). */
export function whoPlugin(fsName: string): unknown {
  @Plugin({ name: 'who' })
  class Who {
    @Service(WHO, { idempotent: true })
    who(): string {
      return fsName;
    }
  }
  return Who;
}

/** A small request that asks for a large answer: the shape that makes write buffers grow. */
@Plugin({ name: 'blob' })
export class BlobPlugin {
  @Service(BLOB, { idempotent: true })
  blob(body: { bytes: number }): Buffer {
    return Buffer.alloc(body.bytes, 0x61);
  }
}

/** Holds every call until `gate` resolves, then answers its `value`: in-flight calls that last exactly as long as a test wants. */
export function gatedPlugin(gate: Promise<void>): unknown {
  @Plugin({ name: 'gated' })
  class Gated {
    @Service(GATED)
    async held(body: { value: unknown }): Promise<unknown> {
      await gate;
      return body.value;
    }
  }
  return Gated;
}
