export * from './etcd-registry.js';
export { FsWatcher, type FsWatcherOptions, type RegistryTarget } from './fs-watcher.js';
export { AsDiscovery, defaultAsName, type AsRegistryOptions } from './as-discovery.js';
export { FsAnnouncer } from './fs-announcer.js';
export { readApplicationServers } from './as-lookup.js';
