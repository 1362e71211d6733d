export * from './secret.js';
export * from './handshake.js';
export * from './address-policy.js';
export * from './tls.js';
export * from './ticket.js';
