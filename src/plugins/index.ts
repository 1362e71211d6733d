import 'reflect-metadata';
export * from './decorators.js';
export * from './errors.js';
export * from './plugin-explorer.js';
export * from './service-table.js';
export * from './plugin-loader.js';
export { inject, injectable } from 'tsyringe';
export * as sampleContracts from './samples/contracts.js';
