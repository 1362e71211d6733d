import { createRequire } from 'node:module';
import type * as Etcd3Module from 'etcd3';

const require = createRequire(import.meta.url);
let loaded: typeof Etcd3Module | undefined;

/**
 * The etcd3 package, loaded on first use: it brings gRPC and protobufjs, about 5.6 MB of heap and
 * 0.3 s of start-up, which every AS, FS and CLI process that never talks to etcd would otherwise
 * carry (and every major GC would mark).
 */
export function etcd3(): typeof Etcd3Module {
  return (loaded ??= require('etcd3') as typeof Etcd3Module);
}
