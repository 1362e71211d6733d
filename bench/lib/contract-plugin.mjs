// The bench's contract-bound echo (scenario sb-direct-contract): the same echo as key 1, but bound
// to a contract whose schema describes the bench payload, so every request is checked by zod on
// the FS before the handler runs. Plain JS on top of the build; decorators applied as functions.
import { Plugin, Service, defineService, z } from '../../dist/index.js';

export const checkedEcho = defineService({
  key: 11,
  name: 'bench.checked-echo',
  idempotent: true,
  request: z.object({
    seq: z.number().int().nonnegative(),
    user: z.string().max(64),
    op: z.enum(['echo', 'noop']),
    tags: z.array(z.string().max(16)).max(8),
    score: z.number(),
    ok: z.boolean(),
    note: z.string().max(64),
  }),
});

export class CheckedEchoPlugin {
  echo(body) {
    return body;
  }
}

Service(checkedEcho)(CheckedEchoPlugin.prototype, 'echo');
Plugin({ name: 'bench-checked-echo' })(CheckedEchoPlugin);
