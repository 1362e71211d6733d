import { Plugin, PluginError, Service, injectable, type BodyOf, type ServiceContext } from 'switchboard';
import { greet } from './contracts.js';

/** A dependency of the plugin, built by the plugin's own container; tests replace it. */
@injectable()
export class Greetings {
  phrase(lang: 'en' | 'fr'): string {
    return lang === 'fr' ? 'Bonjour' : 'Hello';
  }
}

@Plugin({ name: 'greeter' })
export class GreeterPlugin {
  #started = false;

  constructor(private readonly greetings: Greetings) {}

  /** Before the FS registers: open connections, load data. A throw stops the FS with this plugin's name. */
  async onStart(): Promise<void> {
    this.#started = true;
  }

  /** After the FS drained: close what onStart opened. */
  async onStop(): Promise<void> {
    this.#started = false;
  }

  @Service(greet)
  greet(body: BodyOf<typeof greet>, _ctx: ServiceContext): { text: string } {
    if (!this.#started) throw new PluginError('NOT_STARTED', 'the plugin has not started');
    if (body.name.toLowerCase() === 'nobody') throw new PluginError('NO_ONE', 'nobody is there to greet');
    return { text: `${this.greetings.phrase(body.lang)}, ${body.name}` };
  }
}
