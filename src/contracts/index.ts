export * from './define-service.js';
export { z } from 'zod';
