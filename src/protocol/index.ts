export * from './header.js';
export * from './status.js';
export * from './errors.js';
export * from './events.js';
export * from './codec.js';
export * from './frame-parser.js';
export * from './frame-connection.js';
