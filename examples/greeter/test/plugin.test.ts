import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTestBed, type TestBed } from 'switchboard';
import { greet } from '../src/contracts.js';
import { Greetings, GreeterPlugin } from '../src/plugin.js';

describe('greeter', () => {
  let bed: TestBed;
  before(async () => {
    // The same encode, check, run and decode path as a real function server, in this process.
    bed = await createTestBed({ plugins: [GreeterPlugin] });
  });
  after(() => bed.close());

  it('greets in the language asked', async () => {
    assert.deepEqual(await bed.call(greet, { name: 'Ada' }), { text: 'Hello, Ada' });
    assert.deepEqual(await bed.call(greet, { name: 'Ada', lang: 'fr' }), { text: 'Bonjour, Ada' });
  });

  it('refuses a body the contract does not allow, before the handler runs', async () => {
    await assert.rejects(bed.call(greet, { name: '' }), { code: 'SB_ERR_VALIDATION' });
  });

  it("reaches the caller with the plugin's own code", async () => {
    await assert.rejects(bed.call(greet, { name: 'Nobody' }), { code: 'SB_ERR_SERVICE', serviceCode: 'NO_ONE' });
  });

  it('takes a replacement for a dependency', async () => {
    const fake = { phrase: () => 'Hi' };
    const mocked = await createTestBed({ plugins: [GreeterPlugin], providers: [{ token: Greetings, useValue: fake }] });
    try {
      assert.deepEqual(await mocked.call(greet, { name: 'Ada' }), { text: 'Hi, Ada' });
    } finally {
      await mocked.close();
    }
  });
});
