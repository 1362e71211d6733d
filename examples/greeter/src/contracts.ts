import { defineService, z } from 'switchboard';

/**
 * The services of this plugin, shared by the plugin and its callers: the key on the wire, the
 * name people use, and the shapes of the request and the answer.
 */
export const greet = defineService({
  key: 301,
  name: 'greeter.greet',
  idempotent: true,
  timeoutMs: 500,
  request: z.object({
    name: z.string().min(1).max(100),
    lang: z.enum(['en', 'fr']).default('en'),
  }),
  response: z.object({ text: z.string() }),
});
