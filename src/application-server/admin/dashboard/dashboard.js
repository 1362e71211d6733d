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
  li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  const ol = $('log');
  ol.prepend(li);
  while (ol.children.length > 200) ol.lastChild.remove();
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

function spark(values, max) {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('class', 'chart spark');
  svg.setAttribute('viewBox', '0 0 120 24');
  svg.setAttribute('preserveAspectRatio', 'none');
  const line = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
  line.setAttribute('points', points(values, 120, 24, max));
  svg.append(line);
  return svg;
}

function reqPerSecond(id) {
  const h = state.history.get(id) || [];
  if (h.length < 2) return 0;
  const a = h[Math.max(0, h.length - 6)];
  const b = h[h.length - 1];
  return b.t > a.t ? Math.max(0, Math.round(((b.served - a.served) * 1000) / (b.t - a.t))) : 0;
}

async function act(id, action) {
  const method = action === 'remove' ? 'DELETE' : 'POST';
  const path = action === 'remove' ? `/functionservers/${encodeURIComponent(id)}` : `/functionservers/${encodeURIComponent(id)}/${action}`;
  const res = await fetch(path, { method, headers: headers() });
  const body = await res.json().catch(() => ({}));
  log(res.ok ? `${action} ${id}: done` : `${action} ${id}: ${res.status} ${body.message || ''}`);
}

function render() {
  const rows = $('fs-rows');
  rows.textContent = '';
  const list = [...state.fs.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  $('empty').hidden = list.length > 0;
  for (const f of list) {
    const tr = document.createElement('tr');
    tr.dataset.id = f.id;
    tr.dataset.state = f.state;
    const cell = (text, cls) => {
      const td = document.createElement('td');
      if (cls) td.className = cls;
      td.textContent = text;
      tr.append(td);
      return td;
    };
    cell(f.name);
    cell(`${f.host}:${f.port}`);
    cell(String(f.poolType), 'num');
    cell(f.standby ? 'standby' : 'active');
    const st = cell('');
    const pill = document.createElement('span');
    pill.className = `pill state-${f.state}`;
    pill.textContent = f.state;
    st.append(pill);
    cell(f.connections ? `${f.connections.open}/${f.connections.expected}` : '-', 'num');
    cell(String(f.inflight ?? 0), 'num');
    cell(String(f.served ?? 0), 'num');
    cell(String(reqPerSecond(f.id)), 'num');
    cell(f.load ? f.load.cpu.toFixed(2) : '-', 'num');
    cell(f.load ? f.load.elu.toFixed(2) : '-', 'num');
    cell(f.load ? `${Math.round(f.load.rssBytes / 1048576)} MB` : '-', 'num');
    const chart = cell('');
    chart.append(spark((state.history.get(f.id) || []).map((p) => p.load), 1));
    const actions = cell('');
    if (state.canWrite) {
      for (const a of f.state === 'draining' ? ['undrain', 'dispose', 'reconnect', 'remove'] : ['drain', 'dispose', 'reconnect', 'remove']) {
        const b = document.createElement('button');
        b.type = 'button';
        b.textContent = a;
        b.dataset.action = a;
        b.addEventListener('click', () => void act(f.id, a));
        actions.append(b);
      }
    }
    rows.append(tr);
  }
  const chart = $('rps-chart');
  chart.textContent = '';
  const line = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
  const values = state.rps.map((p) => p.v);
  line.setAttribute('points', points(values, 600, 80, Math.max(1, ...values)));
  chart.append(line);
}

function onEvent(type, data) {
  const now = Date.now();
  switch (type) {
    case 'hello':
      state.fs.clear();
      for (const f of data.functionServers) remember(f, now);
      $('role').textContent = data.pair ? `${data.pair.role} · epoch ${data.pair.epoch}` : 'active (no pair)';
      $('role').className = `pill role-${data.role}`;
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
      $('clients').textContent = `${data.clientConnections} clients`;
      break;
  }
  render();
}

async function stream() {
  for (;;) {
    try {
      const res = await fetch('/events', { headers: headers() });
      if (res.status === 401) {
        setStatus('token needed', 'bad');
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
    } catch (err) {
      setStatus(`reconnecting (${err.message})`, 'warn');
    }
    setStatus('reconnecting…', 'warn');
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
