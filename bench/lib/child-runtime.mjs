/**
 * The child side of the bench's IPC: tell the runner we are ready, answer CPU queries, run
 * measurements on request, and stop cleanly when asked, on a signal, or when the runner is gone.
 */
const handlers = new Map();
let shutdownFn = async () => {};
let stopping = false;

export function send(msg) {
  if (process.connected) process.send(msg);
}

export function ready(info = {}) {
  send({ type: 'ready', pid: process.pid, ...info });
}

/** Registers a handler for one message type; its return value (awaited) is sent back with the same id. */
export function handle(type, fn) {
  handlers.set(type, fn);
}

/** What to run before exiting; bounded so that a stuck close never keeps the process alive. */
export function onShutdown(fn) {
  shutdownFn = fn;
}

async function shutdown(code = 0) {
  if (stopping) return;
  stopping = true;
  const guard = setTimeout(() => process.exit(code), 3000);
  guard.unref();
  try {
    await shutdownFn();
  } catch {
    /* exiting anyway */
  }
  process.exit(code);
}

export function fail(err) {
  process.stderr.write(`${err?.stack ?? err}\n`);
  send({ type: 'error', message: String(err?.message ?? err) });
  void shutdown(1);
}

process.on('message', async (msg) => {
  if (msg?.type === 'exit') return void shutdown(0);
  if (msg?.type === 'cpu') {
    const u = process.cpuUsage();
    return send({ type: 'cpu', id: msg.id, us: u.user + u.system });
  }
  const fn = handlers.get(msg?.type);
  if (!fn) return;
  try {
    const result = await fn(msg);
    send({ type: `${msg.type}:done`, id: msg.id, ok: true, result });
  } catch (err) {
    send({ type: `${msg.type}:done`, id: msg.id, ok: false, error: String(err?.message ?? err) });
  }
});
process.on('disconnect', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));
process.on('SIGINT', () => void shutdown(0));
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);

export function argValue(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}
