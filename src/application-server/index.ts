export * from './application-server.js';
export * from './routing/scheduler.js';
export type { FsState, FunctionServerInfo, FsSource } from './registry/function-server-entry.js';
export type { AddFunctionServerOptions, CandidateSet } from './registry/fs-manager.js';
export * from './admin/admin-server.js';
export { createMetrics } from './admin/metrics.js';
