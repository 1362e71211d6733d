/** A real etcd (Debian's etcd-server) on loopback with a temporary data directory. */
export interface EtcdServer {
  /** `etcd://127.0.0.1:<client port>`: what --registry takes. */
  url: string;
  clientPort: number;
  pid: number;
  dir: string;
  /** SIGSTOP / SIGCONT: makes etcd unreachable (connections hang) and back, without losing its data. */
  pause(): void;
  resume(): void;
  /** Kills it by its PID and removes its directory. */
  stop(): Promise<void>;
  /** The same, synchronously, for a process 'exit' handler. */
  killNow(): void;
}

/** Why etcd cannot run here, or undefined when it can. */
export function etcdMissing(): string | undefined;

export function startEtcd(opts?: { readyMs?: number }): Promise<EtcdServer>;
