export * from './application-server.js';
export * from './scheduler.js';
export type { FsState, FunctionServerInfo, FsSource } from './function-server-entry.js';
export type { AddFunctionServerOptions, CandidateSet } from './fs-manager.js';
export * from './admin-server.js';
export { createMetrics } from './metrics.js';
