// Which FS gets which fault. fs-1 and fs-2 are active, fs-3 is the standby. The two actives' faults
// overlap, so that for a few seconds no active FS is available and the standby must serve; the
// standby's own fault comes later, once both actives are back (faulting it while it is the only
// FS left would fail idempotent calls with UNAVAILABLE by design, which is not what we measure).

export const FAULTS = {
  kill: { signal: 'SIGKILL', verb: 'kill -9', recover: 'restart (same port)', out: 'function server is unavailable' },
  stop: { signal: 'SIGSTOP', verb: 'SIGSTOP', recover: 'SIGCONT', out: 'function server is unavailable' },
  term: { signal: 'SIGTERM', verb: 'SIGTERM (drain)', recover: 'restart (same port)', out: 'function server is draining' },
};

export const PLANS = {
  silent: {
    first: { fs: 'fs-2', fault: 'stop' },
    second: { fs: 'fs-1', fault: 'kill' },
    standby: { fs: 'fs-3', fault: 'term' },
    about: [
      'fs-2 is frozen under load (SIGSTOP: socket open, nothing read), so only heartbeats can find it; requests',
      'pending on it wait for that, then idempotent ones are re-sent and the rest answered CHANNEL_CLOSED.',
      'Once fs-2 is out, fs-1 is killed (kill -9): no active FS is left and the standby fs-3 must take all',
      "traffic, including fs-1's re-sent idempotent calls. fs-2 is thawed (SIGCONT) and fs-1 restarted: the",
      'standby steps back. Last, the now idle standby is drained (SIGTERM) and restarted.',
    ],
  },
  drain: {
    first: { fs: 'fs-1', fault: 'term' },
    second: { fs: 'fs-2', fault: 'kill' },
    standby: { fs: 'fs-3', fault: 'stop' },
    about: [
      'fs-1 is drained under load (SIGTERM): in-flight calls must finish, new ones go to fs-2. Once fs-1 is',
      "draining, fs-2 is killed (kill -9): the standby fs-3 must take all traffic, including fs-2's re-sent",
      'idempotent calls. fs-1 and then fs-2 are restarted on their ports: the standby steps back. Last, the',
      'now idle standby is frozen (SIGSTOP: only heartbeats can find it) and later thawed (SIGCONT).',
    ],
  },
};

/** Milliseconds after the load starts, at a 500 ms heartbeat; scaled up for slower heartbeats. */
export const TIMELINE = {
  first: 4000,
  second: 7000,
  recoverFirst: 10_000,
  recoverSecond: 13_000,
  standbyFault: 18_000,
  standbyRecover: 22_000,
  /** The last event needs this long after it to be re-admitted and seen under load. */
  minDuration: 26_000,
};
