/** Response status codes (header byte 4). Values are part of the wire contract: never renumber. */
export const Status = {
  OK: 0,
  BAD_REQUEST: 10,
  SERVICE_NOT_FOUND: 20,
  UNAVAILABLE: 30,
  TIMEOUT: 40,
  SERVICE_ERROR: 50,
  SERVER_ERROR: 60,
  CHANNEL_CLOSED: 70,
  OVERLOADED: 80,
  /** The peer has not proved who it is (no proof yet, a wrong one, or too late). */
  UNAUTHORIZED: 90,
  /** This AS is the standby of a pair: the request did not run; send it to the active (named in the body). */
  NOT_ACTIVE: 100,
} as const;

export type StatusName = keyof typeof Status;
export type StatusCode = (typeof Status)[StatusName];

const NAMES = new Map<number, StatusName>(
  (Object.entries(Status) as [StatusName, number][]).map(([name, code]) => [code, name]),
);

/** The status's name, or `STATUS_<n>` for a code this version does not know. */
export function statusName(code: number): string {
  return NAMES.get(code) ?? `STATUS_${code}`;
}

export function isKnownStatus(code: number): code is StatusCode {
  return NAMES.has(code);
}
