// The pools displayer: one row per function server, kept current from the AS's /events stream
// (Server-Sent Events read with fetch, so that the admin token can travel in a header).
'use strict';

const WINDOW_MS = 5 * 60 * 1000;
const state = {
  token: sessionStorage.getItem('switchboard-admin-token') || '',
  fs: new Map(), // id -> info
  history: new Map(), // id -> [{ t, load, served }]
  rps: [], // [{ t, v }]
  canWrite: true,
};

const $ = (id) => document.getElementById(id);
const headers = () => (state.token ? { authorization: `Bearer ${state.token}` } : {});

function setStatus(text, cls) {
  const s = $('status');
  s.textContent = text;
  s.className = `pill ${cls}`;
}

function log(text) {
  const li = document.createElement('li');
  const time = document.createElement('span');
  time.className = 'muted';
  time.textContent = `${new Date().toLocaleTimeString()} `;
  li.append(time, text);
  const list = $('log');
  list.prepend(li);
  while (list.children.length > 200) list.lastChild.remove();
}

function trim(list, now) {
  while (list.length > 0 && now - list[0].t > WINDOW_MS) list.shift();
}

function remember(info, now = Date.now()) {
  const prev = state.fs.get(info.id);
  state.fs.set(info.id, { ...prev, ...info });
  const h = state.history.get(info.id) || [];
  const cur = state.fs.get(info.id);
  h.push({ t: now, load: cur.loadScore ?? 0, served: cur.served ?? 0 });
  trim(h, now);
  state.history.set(info.id, h);
}

function points(values, width, height, max) {
  if (values.length === 0) return '';
  const top = Math.max(max, 1e-9);
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  return values.map((v, i) => `${(i * step).toFixed(1)},${(height - (v / top) * (height - 2) - 1).toFixed(1)}`).join(' ');
}

const SVG = 'http://www.w3.org/2000/svg';

/** A small line chart of `values` (0 to `max`), its polyline updated in place by setLine(). */
function spark() {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', 'chart spark');
  svg.setAttribute('viewBox', '0 0 120 24');
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.append(document.createElementNS(SVG, 'polyline'));
  return svg;
}

function setLine(svg, values, width, height, max) {
  const line = svg.querySelector('polyline');
  const p = points(values, width, height, max);
  if (line.getAttribute('points') !== p) line.setAttribute('points', p);
}

function reqPerSecond(id) {
  const h = state.history.get(id) || [];
  if (h.length < 2) return 0;
  const b = h[h.length - 1];
  // The served count from about three seconds back (or the oldest there is).
  let a = h[0];
  for (let i = h.length - 2; i >= 0; i--) {
    a = h[i];
    if (b.t - a.t >= 3000) break;
  }
  return b.t > a.t ? Math.max(0, Math.round(((b.served - a.served) * 1000) / (b.t - a.t))) : 0;
}

async function act(id, action, button) {
  const method = action === 'remove' ? 'DELETE' : 'POST';
  const path = action === 'remove' ? `/functionservers/${encodeURIComponent(id)}` : `/functionservers/${encodeURIComponent(id)}/${action}`;
  button.disabled = true;
  try {
    const res = await fetch(path, { method, headers: headers() });
    const body = await res.json().catch(() => ({}));
    log(res.ok ? `${action} ${id}: done` : `${action} ${id}: ${res.status} ${body.code || ''} ${body.message || ''}`);
  } catch (err) {
    log(`${action} ${id}: ${err.message}`);
  } finally {
    button.disabled = false;
  }
}

const COLUMNS = ['name', 'endpoint', 'pool', 'tier', 'state', 'connections', 'inflight', 'served', 'direct', 'rps', 'cpu', 'elu', 'memory', 'chart', 'actions'];
const NUMERIC = new Set(['pool', 'connections', 'inflight', 'served', 'direct', 'rps', 'cpu', 'elu', 'memory']);
/** id -> the row's elements, kept across renders so that a click is never lost to a redraw. */
const rowsById = new Map();

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function rowOf(id) {
  let r = rowsById.get(id);
  if (r) return r;
  const tr = document.createElement('tr');
  tr.dataset.id = id;
  const cells = {};
  for (const c of COLUMNS) {
    const td = document.createElement('td');
    td.dataset.col = c;
    if (NUMERIC.has(c)) td.className = 'num';
    tr.append(td);
    cells[c] = td;
  }
  const pill = document.createElement('span');
  cells.state.append(pill);
  const chart = spark();
  cells.chart.append(chart);
  r = { tr, cells, pill, chart, actions: '' };
  rowsById.set(id, r);
  return r;
}

const percent = (x) => `${Math.round(x * 100)}%`;

function renderRow(f) {
  const r = rowOf(f.id);
  const c = r.cells;
  r.tr.dataset.state = f.state;
  setText(c.name, f.name);
  setText(c.endpoint, `${f.host}:${f.port}`);
  setText(c.pool, String(f.poolType));
  setText(c.tier, f.standby ? 'standby' : 'active');
  setText(r.pill, f.state);
  r.pill.className = `pill state-${f.state}`;
  setText(c.connections, f.connections ? `${f.connections.open}/${f.connections.expected}` : '-');
  setText(c.inflight, String(f.inflight ?? 0));
  setText(c.served, String(f.served ?? 0));
  // Director mode: clients holding a lease on it, and requests it had from them straight.
  setText(c.direct, f.direct ? `${f.direct.leases} · ${f.direct.requests}` : '-');
  setText(c.rps, String(reqPerSecond(f.id)));
  setText(c.cpu, f.load ? percent(f.load.cpu) : '-');
  setText(c.elu, f.load ? percent(f.load.elu) : '-');
  setText(c.memory, f.load ? `${Math.round(f.load.rssBytes / 1048576)} MB` : '-');
  setLine(r.chart, (state.history.get(f.id) || []).map((p) => p.load), 120, 24, 1);
  const actions = state.canWrite ? [f.state === 'draining' ? 'undrain' : 'drain', 'dispose', 'reconnect', 'remove'] : [];
  const key = actions.join(' ');
  if (r.actions !== key) {
    r.actions = key;
    c.actions.textContent = '';
    for (const a of actions) {
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = a;
      b.dataset.action = a;
      b.addEventListener('click', () => void act(f.id, a, b));
      c.actions.append(b);
    }
  }
  return r.tr;
}

function render() {
  const body = $('fs-rows');
  const list = [...state.fs.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.id < b.id ? -1 : 1));
  $('empty').hidden = list.length > 0;
  for (const [id, r] of rowsById) {
    if (!state.fs.has(id)) {
      r.tr.remove();
      rowsById.delete(id);
    }
  }
  list.forEach((f, i) => {
    const tr = renderRow(f);
    if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null);
  });
  const values = state.rps.map((p) => p.v);
  const peak = Math.max(1, ...values);
  setLine($('rps-chart'), values, 600, 80, peak);
  setText($('rps-peak'), `peak ${Math.max(0, ...values)} req/s`);
  const span = state.rps.length > 1 ? Math.round((state.rps[state.rps.length - 1].t - state.rps[0].t) / 1000) : 0;
  setText($('rps-from'), span >= 120 ? `${Math.round(span / 60)} min ago` : `${span} s ago`);
}

let renderQueued = false;
/** Events come in bursts: draw at most once a frame. */
function queueRender() {
  if (renderQueued) return;
  renderQueued = true;
  const run = () => {
    renderQueued = false;
    render();
  };
  // A hidden tab gets no animation frames; a timer still keeps the page current there.
  if (document.hidden) setTimeout(run, 250);
  else window.requestAnimationFrame(run);
}

function onEvent(type, data) {
  const now = Date.now();
  switch (type) {
    case 'hello':
      state.fs.clear();
      for (const f of data.functionServers) remember(f, now);
      $('role').textContent = data.pair ? `${data.pair.role} · epoch ${data.pair.epoch}` : 'active (no pair)';
      $('role').className = `pill role-${data.role}`;
      log(`connected: ${data.functionServers.length} function server${data.functionServers.length === 1 ? '' : 's'}`);
      break;
    case 'joined':
      remember(data, now);
      log(`joined: ${data.name} (${data.host}:${data.port})`);
      break;
    case 'left':
      state.fs.delete(data.id);
      state.history.delete(data.id);
      log(`left: ${data.name} (${data.why})`);
      break;
    case 'state':
      remember(data, now);
      log(`${data.name}: ${data.from} → ${data.state}`);
      break;
    case 'changed':
      remember(data, now);
      log(`${data.name}: services changed (${data.serviceKeys.join(', ')})`);
      break;
    case 'load':
    case 'connections':
      if (state.fs.has(data.id)) remember(data, now);
      break;
    case 'role':
      $('role').textContent = `${data.to} · epoch ${data.epoch}`;
      $('role').className = `pill role-${data.to}`;
      log(`this AS is now ${data.to} (${data.reason})`);
      break;
    case 'sibling':
      log(`sibling ${data.online ? 'online' : 'offline'} (${data.reason})`);
      break;
    case 'totals':
      state.rps.push({ t: now, v: data.requestsPerSecond });
      trim(state.rps, now);
      $('rps').textContent = `${data.requestsPerSecond} req/s`;
      $('clients').textContent = `${data.clientConnections} client${data.clientConnections === 1 ? '' : 's'}`;
      break;
  }
  queueRender();
}

async function stream() {
  for (;;) {
    try {
      const res = await fetch('/events', { headers: headers() });
      if (res.status === 401) {
        setStatus(state.token ? 'token refused' : 'token needed', 'bad');
        $('token-form').hidden = false;
        return;
      }
      if (!res.ok || !res.body) throw new Error(`status ${res.status}`);
      setStatus('live', 'ok');
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let end;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          let type = 'message';
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) type = line.slice(7);
            else if (line.startsWith('data: ')) data += line.slice(6);
          }
          if (data) onEvent(type, JSON.parse(data));
        }
      }
      setStatus('reconnecting…', 'warn');
    } catch (err) {
      setStatus(`reconnecting (${err.message})`, 'warn');
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

$('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  state.token = $('token').value;
  sessionStorage.setItem('switchboard-admin-token', state.token);
  $('token-form').hidden = true;
  void stream();
});

void stream();
