/** A loopback port free now (below the ephemeral range), not in `avoid`; UDP with `{ udp: true }`. */
export function freePort(avoid?: ReadonlySet<number>, opts?: { udp?: boolean }): Promise<number>;

/** `n` distinct free TCP ports and `m` distinct free UDP ports, none of them equal. */
export function freePorts(n: number, m?: number): Promise<{ tcp: number[]; udp: number[] }>;
