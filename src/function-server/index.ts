export * from './function-server.js';
export * from './performance-monitor.js';
export { RequestHandler } from './request-handler.js';
export * from './test-bed.js';
