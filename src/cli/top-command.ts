import { Command } from 'commander';
import type { FunctionServerInfo, PairStatus } from '../application-server/index.js';
import { AdminError, EXIT, adminAction, adminRequest, adminStream, adminTarget, expectOk, fail, withAdminOptions, type AdminFlags, type AdminTarget } from './admin-client.js';
import { parseIntIn } from './parse.js';
import { formatEndpoint } from '../common/addresses.js';

/** The AS's registry cannot hold more (its --max-function-servers limit), so neither does the table. */
const MAX_ROWS = 100_000;
/** One event larger than this is not from a sane AS. */
const MAX_EVENT_CHARS = 64 * 1024 * 1024;
/** The AS sends totals every second and a keep-alive every 15 s: this much silence means it is gone. */
const SILENCE_MS = 45_000;

/**
 * Server-Sent Events, as far as /events uses them: `event:` and `data:` fields, a blank line ends
 * an event, lines starting with ':' are comments (keep-alives); `id:` and `retry:` are ignored.
 */
export class SseParser {
  #buffer = '';
  #event = '';
  #data: string[] = [];

  constructor(readonly onEvent: (event: string, data: string) => void) {}

  push(chunk: string): void {
    this.#buffer += chunk;
    let start = 0;
    for (;;) {
      const nl = this.#buffer.indexOf('\n', start);
      if (nl < 0) break;
      const line = this.#buffer.slice(start, this.#buffer[nl - 1] === '\r' ? nl - 1 : nl);
      start = nl + 1;
      this.#line(line);
    }
    this.#buffer = this.#buffer.slice(start);
    if (this.#buffer.length + this.#data.reduce((a, d) => a + d.length, 0) > MAX_EVENT_CHARS) throw new AdminError(`an event from the admin port exceeds ${MAX_EVENT_CHARS} characters`, EXIT.FAILED);
  }

  #line(line: string): void {
    if (line === '') {
      if (this.#data.length > 0) this.onEvent(this.#event || 'message', this.#data.join('\n'));
      this.#event = '';
      this.#data = [];
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.#event = value;
    else if (field === 'data') this.#data.push(value);
  }
}

interface Totals {
  requestsPerSecond?: number;
  clientConnections: number;
  controlConnections: number;
  relayed: number;
  answeredLocally: number;
  resent: number;
  hedged: number;
}

export interface TopRow {
  id: string;
  name: string;
  endpoint: string;
  poolType: number;
  tier: 'active' | 'standby';
  state: string;
  connections: { open: number; expected: number };
  inflight: number;
  served: number;
  /** From served deltas between frames; null on the first frame that shows the FS. */
  requestsPerSecond: number | null;
  cpu: number | null;
  elu: number | null;
  memory: number | null;
  rssBytes: number | null;
  loadScore: number | null;
}

export interface TopFrame {
  at: string;
  admin: string;
  role: string;
  pair: PairStatus | null;
  totals: Totals | null;
  functionServers: TopRow[];
}

/** What `top` knows of the AS: built from the first answers, then kept up by events. */
export class TopModel {
  readonly #fss = new Map<string, FunctionServerInfo>();
  #role = 'active';
  #pair: PairStatus | null = null;
  #totals: Totals | null = null;
  #last = new Map<string, number>();
  #lastAt = 0;

  reset(list: FunctionServerInfo[], pair: PairStatus | null, role?: string): void {
    this.#fss.clear();
    for (const f of list.slice(0, MAX_ROWS)) this.#fss.set(f.id, f);
    this.#pair = pair;
    this.#role = role ?? pair?.role ?? 'active';
  }

  /** Applies one event; an unknown id gets a row only from `joined`. */
  apply(event: string, d: Record<string, unknown>): void {
    const id = d.id as string;
    const known = this.#fss.get(id);
    switch (event) {
      case 'hello':
        this.reset(d.functionServers as FunctionServerInfo[], (d.pair as PairStatus | null) ?? null, d.role as string);
        this.#totals = { ...(d.totals as Totals), requestsPerSecond: undefined };
        break;
      case 'joined':
        if (known || this.#fss.size < MAX_ROWS) this.#fss.set(id, d as unknown as FunctionServerInfo);
        break;
      case 'left':
        this.#fss.delete(id);
        break;
      case 'state':
      case 'changed':
      case 'load':
      case 'connections':
        if (known) this.#fss.set(id, { ...known, ...(d as Partial<FunctionServerInfo>) });
        break;
      case 'role':
        this.#role = d.to as string;
        if (this.#pair) this.#pair = { ...this.#pair, role: d.to as PairStatus['role'], epoch: d.epoch as number };
        break;
      case 'sibling':
        if (this.#pair) this.#pair = { ...this.#pair, siblingOnline: d.online as boolean };
        break;
      case 'totals':
        this.#totals = d as unknown as Totals;
        break;
    }
  }

  /** The picture now; requests per second from the served counts since the previous frame. */
  frame(admin: string, now = Date.now()): TopFrame {
    const dt = (now - this.#lastAt) / 1000;
    const seen = new Map<string, number>();
    const rows: TopRow[] = [];
    for (const f of [...this.#fss.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const before = this.#last.get(f.id);
      seen.set(f.id, f.served);
      rows.push({
        id: f.id,
        name: f.name,
        endpoint: formatEndpoint(f),
        poolType: f.poolType,
        tier: f.standby ? 'standby' : 'active',
        state: f.state,
        connections: f.connections,
        inflight: f.inflight,
        served: f.served,
        requestsPerSecond: before !== undefined && dt > 0 ? Math.max(0, Math.round((f.served - before) / dt)) : null,
        cpu: f.load?.cpu ?? null,
        elu: f.load?.elu ?? null,
        memory: f.load?.memory ?? null,
        rssBytes: f.load?.rssBytes ?? null,
        loadScore: f.load ? f.loadScore : null,
      });
    }
    this.#last = seen; // only the FSs shown now: bounded as the table is
    this.#lastAt = now;
    return { at: new Date(now).toISOString(), admin, role: this.#role, pair: this.#pair, totals: this.#totals, functionServers: rows };
  }
}

const pad = (s: unknown, n: number, left = true): string => (left ? String(s).padEnd(n) : String(s).padStart(n));
const pct = (x: number | null): string => (x === null ? '-' : `${Math.round(x * 100)}%`);
const mb = (x: number | null): string => (x === null ? '-' : `${Math.round(x / 1e6)}M`);
const num = (x: number | null | undefined): string => (x === null || x === undefined ? '-' : String(x));

/** The frame as text lines; at most `maxLines` (the terminal's height), saying how many rows were cut. */
export function renderFrame(f: TopFrame, maxLines = Infinity): string[] {
  const p = f.pair;
  const role = p ? `role ${p.role} · epoch ${p.epoch} · sibling ${p.siblingOnline ? 'online' : 'offline'}` : `role ${f.role} (no pair)`;
  const t = f.totals;
  const states = new Map<string, number>();
  for (const r of f.functionServers) states.set(r.state, (states.get(r.state) ?? 0) + 1);
  const lines = [
    `switchboard top · ${f.admin} · ${role} · ${new Date(f.at).toTimeString().slice(0, 8)}`,
    t
      ? `requests ${num(t.requestsPerSecond)}/s · relayed ${t.relayed} · answered by the AS ${t.answeredLocally} · re-sent ${t.resent} · hedged ${t.hedged} · clients ${t.clientConnections} · control links ${t.controlConnections}`
      : 'requests -/s (waiting for totals)',
    `${f.functionServers.length} function server${f.functionServers.length === 1 ? '' : 's'}${[...states].map(([s, n]) => ` · ${n} ${s}`).join('')} · ${f.functionServers.reduce((a, r) => a + r.inflight, 0)} in flight`,
    '',
    `${pad('NAME', 20)} ${pad('ENDPOINT', 21)} ${pad('POOL', 5, false)} ${pad('TIER', 7)} ${pad('STATE', 11)} ${pad('CONNS', 5, false)} ${pad('INFLIGHT', 8, false)} ${pad('SERVED', 9, false)} ${pad('REQ/S', 6, false)} ${pad('CPU', 4, false)} ${pad('ELU', 4, false)} ${pad('RSS', 6, false)} ${pad('MEM', 4, false)}`,
  ];
  const room = Math.max(1, maxLines - lines.length);
  const rows = f.functionServers.length > room ? f.functionServers.slice(0, room - 1) : f.functionServers;
  for (const r of rows) {
    lines.push(
      `${pad(r.name.slice(0, 20), 20)} ${pad(r.endpoint.slice(0, 21), 21)} ${pad(r.poolType, 5, false)} ${pad(r.tier, 7)} ${pad(r.state, 11)} ${pad(`${r.connections.open}/${r.connections.expected}`, 5, false)} ${pad(r.inflight, 8, false)} ${pad(r.served, 9, false)} ${pad(num(r.requestsPerSecond), 6, false)} ${pad(pct(r.cpu), 4, false)} ${pad(pct(r.elu), 4, false)} ${pad(mb(r.rssBytes), 6, false)} ${pad(pct(r.memory), 4, false)}`,
    );
  }
  if (rows.length < f.functionServers.length) lines.push(`... ${f.functionServers.length - rows.length} more (make the terminal taller, or use --json)`);
  return lines;
}

interface TopFlags extends AdminFlags {
  intervalMs: number;
  iterations?: number;
}

/** Loads the picture, follows /events, redraws every interval; sets the exit code when it ends. */
async function runTop(t: AdminTarget, o: TopFlags): Promise<void> {
  const admin = `${t.host}:${t.port}`;
  const model = new TopModel();
  const [fss, pair] = await Promise.all([adminRequest(t, 'GET', '/functionservers'), adminRequest(t, 'GET', '/pair')]);
  const list = expectOk<FunctionServerInfo[]>(t, fss);
  if (pair.status !== 404) expectOk(t, pair); // 404: this AS runs alone
  model.reset(list, pair.status === 200 ? (pair.body as PairStatus) : null);
  const stream = await adminStream(t, '/events');

  const tty = process.stdout.isTTY === true && !o.json;
  let frames = 0;
  let timer: NodeJS.Timeout | undefined;
  let silence: NodeJS.Timeout | undefined;
  return new Promise<void>((resolve) => {
    let done = false;
    const finish = (code: number, err?: AdminError): void => {
      if (done) return;
      done = true;
      clearInterval(timer);
      clearTimeout(silence);
      process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
      stream.abort();
      if (tty) process.stdout.write('\x1b[?25h');
      if (err) fail(err, o.json);
      else process.exitCode = code;
      resolve();
    };
    const fatal = (err: AdminError): void => finish(err.exitCode, err);
    const onSignal = (): void => finish(EXIT.OK); // Ctrl-C is how top is meant to end
    process.on('SIGINT', onSignal).on('SIGTERM', onSignal);

    const draw = (): void => {
      const f = model.frame(admin);
      frames++;
      if (o.json) process.stdout.write(`${JSON.stringify(f)}\n`);
      else if (tty) process.stdout.write(`\x1b[H${renderFrame(f, process.stdout.rows ?? Infinity).join('\x1b[K\n')}\x1b[K\n\x1b[J`);
      else process.stdout.write(`${renderFrame(f).join('\n')}\n\n`);
      if (o.iterations !== undefined && frames >= o.iterations) finish(EXIT.OK);
    };
    const heard = (): void => {
      clearTimeout(silence);
      silence = setTimeout(() => fatal(new AdminError(`the event stream from ${admin} sent nothing for ${SILENCE_MS / 1000} s, not even a keep-alive: the AS is stuck or the network dropped it`, EXIT.UNREACHABLE)), SILENCE_MS);
    };
    const parser = new SseParser((event, data) => {
      if (done) return;
      let d: unknown;
      try {
        d = JSON.parse(data);
      } catch {
        return; // not ours to guess at
      }
      if (typeof d === 'object' && d !== null) model.apply(event, d as Record<string, unknown>);
      // The first frame waits for the whole picture, so every later change shows as a change.
      if (event === 'hello' && timer === undefined) {
        if (tty) process.stdout.write('\x1b[?25l\x1b[2J');
        draw();
        if (!done) timer = setInterval(draw, o.intervalMs);
      }
    });
    const ended = (): void =>
      fatal(new AdminError(`the event stream from ${admin} ended: the AS stopped or closed its admin port; \`switchboard status --admin ${admin}\` tells when it is back`, EXIT.UNREACHABLE));
    stream.res.setEncoding('utf8');
    stream.res.on('data', (chunk: string) => {
      if (done) return;
      heard();
      try {
        parser.push(chunk);
      } catch (err) {
        fatal(err as AdminError);
      }
    });
    stream.res.on('end', ended).on('close', ended).on('error', ended);
    heard();
  });
}

/** `switchboard top`: a live view of an AS and its function servers, refreshed from /events. */
export function topCommand(): Command {
  return withAdminOptions(new Command('top'))
    .description('a live view of an application server and its function servers (like top); Ctrl-C ends it')
    .option('--interval-ms <ms>', 'redraw this often', parseIntIn(100, 3_600_000), 1000)
    .option('--iterations <n>', 'stop after this many redraws (exit 0)', parseIntIn(1, 1_000_000_000))
    .addHelpText('after', '\nWith --json, one JSON object per redraw (NDJSON). When the AS stops, top says so and exits 4.')
    .action(adminAction(async (o: TopFlags) => runTop(adminTarget(o), o)));
}
