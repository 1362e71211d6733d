import 'reflect-metadata';
export * from './protocol/index.js';
export * from './plugins/index.js';
export * from './function-server/index.js';
export * from './application-server/index.js';
export * from './client/index.js';
export * from './security/index.js';
export { createLogger, silentLogger, type Logger } from './common/logger.js';
export * from './contracts/index.js';
