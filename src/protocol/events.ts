import { z } from 'zod';

/**
 * Event kinds (header byte 5, with the event flag set). Events are control traffic: never
 * counted as requests, never handed to a plugin.
 */
export const EventKind = {
  /** Two-way ping; the answer (the pong) is an event response with the same request id. */
  HEARTBEAT: 1,
  /** FS → AS on the control connection: who I am, where my data endpoint is, which keys I serve. */
  HELLO: 2,
  /** FS → AS, one-way, every refresh period: my CPU, memory and event-loop load. */
  LOAD: 3,
  /** FS → AS: I am stopping; choose me no more. In-flight requests still finish. */
  DRAIN: 4,
  /**
   * AS → FS, the first request on every pool connection: the AS's body cap in, the FS's name and
   * service table out. The answer makes the connection ready and is what the AS routes on.
   */
  DESCRIBE: 5,
  /**
   * Listener → dialer, one-way, the first frame on a port that wants proof: a fresh nonce. The
   * dialer answers with AUTH before anything else (see src/security/handshake.ts).
   */
  CHALLENGE: 6,
  /** Dialer → listener, two-way: the dialer's nonce and its proof; the answer carries the listener's proof. */
  AUTH: 7,
  /**
   * Client → AS, two-way: `{ name }` of a service (a contract's name such as `greeter.greet`); the
   * answer is its descriptor `{ key, name, idempotent, timeoutMs? }`, or SERVICE_NOT_FOUND.
   */
  RESOLVE: 8,
  /**
   * FS → AS, one-way, on each pool connection: this FS's service table changed (its plugins were
   * reloaded); the AS answers by sending DESCRIBE again on that connection.
   */
  CHANGED: 9,
  /**
   * Client → AS, two-way (director mode): `{ key, poolType? }`; the answer names FS endpoints that
   * serve it, each with a weight, a lease time, and a ticket the FSs accept from this client.
   */
  LOOKUP: 10,
  /**
   * Direct client → FS, two-way: a ticket the AS signed and the client's proof of its session key,
   * in answer to CHALLENGE (instead of AUTH), or later on the same connection to renew its grant.
   */
  TICKET: 11,
} as const;

export type EventKindName = keyof typeof EventKind;

const uint32 = z.number().int().min(0).max(0xffffffff);
/** Printable ASCII without spaces: names and hosts end up in logs and metric labels. */
const token = (max: number) => z.string().min(1).max(max).regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces');
const bytes = (min: number, max: number) =>
  z.custom<Uint8Array>((v) => v instanceof Uint8Array && v.length >= min && v.length <= max, `msgpack bin of ${min} to ${max} bytes`);

/** Longest FS name, and the most service keys one HELLO or DESCRIBE may carry (the AS may allow fewer). */
export const MAX_NAME_LENGTH = 128;
export const MAX_HOST_LENGTH = 253;
export const MAX_SERVICES_PER_FS = 65_536;

export const serviceDescriptorSchema = z.object({
  key: uint32,
  idempotent: z.boolean().default(false),
  timeoutMs: uint32.optional(),
  /** The contract's name (`greeter.greet`), when the handler is bound to one. */
  name: token(MAX_NAME_LENGTH).optional(),
});
export type ServiceDescriptor = z.infer<typeof serviceDescriptorSchema>;

export const helloSchema = z.object({
  name: token(MAX_NAME_LENGTH),
  poolType: z.number().int().min(0).max(0xffff),
  standby: z.boolean().default(false),
  endpoint: z.object({ host: token(MAX_HOST_LENGTH), port: z.number().int().min(1).max(65535) }),
  services: z.array(serviceDescriptorSchema).max(MAX_SERVICES_PER_FS),
  pid: z.number().int().optional(),
  version: z.string().max(64).optional(),
});
export type Hello = z.infer<typeof helloSchema>;

export const helloReplySchema = z.object({
  fsId: z.string(),
  heartbeatMs: z.number().int().positive(),
});
export type HelloReply = z.infer<typeof helloReplySchema>;

/** Fractions in [0, 1] except memory bytes; the AS stamps its own receive time on arrival. */
export const loadSchema = z.object({
  cpu: z.number().min(0).max(64),
  elu: z.number().min(0).max(1),
  rssBytes: z.number().min(0),
  heapUsedBytes: z.number().min(0),
  memory: z.number().min(0).max(1),
  inflight: z.number().int().min(0).max(0xffffffff),
  /** Handlers still running after their deadline was answered with TIMEOUT (counted in inflight too). */
  overdue: z.number().int().min(0).max(0xffffffff).optional(),
  /** Requests received on direct-client connections since the FS started (director mode). */
  directRequests: z.number().int().min(0).optional(),
});
export type LoadReport = z.infer<typeof loadSchema>;

/** AS → FS: what the AS accepts on this connection. */
export const describeRequestSchema = z.object({
  maxBodyBytes: z.number().int().positive().optional(),
});

/** Largest FS weight: LVS's range is wider, but a thousand to one is already more than one pool needs. */
export const MAX_WEIGHT = 1000;

export const describeReplySchema = z.object({
  name: token(MAX_NAME_LENGTH),
  poolType: z.number().int().min(0).max(0xffff),
  standby: z.boolean().default(false),
  services: z.array(serviceDescriptorSchema).max(MAX_SERVICES_PER_FS),
  /** Its share against FSs of weight 1 (LVS's wrr/wlc): twice the weight, twice the requests at equal load. */
  weight: z.number().int().min(1).max(MAX_WEIGHT).default(1),
  /** Header versions it reads on its data port; without 2, the AS strips the extension block first. */
  versions: z.array(z.number().int().min(1).max(255)).max(16).default([1]),
});
export type DescribeReply = z.infer<typeof describeReplySchema>;

/** CHALLENGE body: what the listener asks the dialer to prove, and the nonce to prove it over. */
export const challengeSchema = z.object({
  v: z.literal(1),
  realm: z.string().min(1).max(32),
  nonce: bytes(16, 64),
  mechanisms: z.array(z.string().max(32)).max(8),
});
export type Challenge = z.infer<typeof challengeSchema>;

/** AUTH request body: the dialer's own nonce and its proof. */
export const authRequestSchema = z.object({
  mechanism: z.literal('hmac-sha256'),
  nonce: bytes(16, 64),
  proof: bytes(32, 32),
});

/** AUTH answer body (status OK): the listener's proof, so the dialer knows whom it reached. */
export const authReplySchema = z.object({
  proof: bytes(32, 32),
});

/** LOOKUP request body. */
export const lookupRequestSchema = z.object({
  key: uint32,
  poolType: z.number().int().min(0).max(0xffff).default(0),
});

/** Most endpoints one LOOKUP answer names. */
export const MAX_LOOKUP_ENDPOINTS = 64;

/** A ticket as the AS hands it to a client: the signed claims, their tag, and the session key. */
export const ticketGrantSchema = z.object({
  /** The claims, msgpack-encoded: `{ v: 1, client, keys, poolType, exp }`. Opaque to the client. */
  body: bytes(1, 4096),
  /** HMAC-SHA256 of the claims with the join secret. */
  mac: bytes(32, 32),
  /** The session key: HMAC-SHA256 of the claims with the join secret under another label. */
  key: bytes(32, 32),
  /** Epoch ms after which FSs refuse it. */
  expiresAt: z.number().int().min(0),
});
export type TicketGrant = z.infer<typeof ticketGrantSchema>;

/** LOOKUP answer body. */
export const lookupReplySchema = z.object({
  endpoints: z
    .array(
      z.object({
        id: token(MAX_NAME_LENGTH),
        host: token(MAX_HOST_LENGTH),
        port: z.number().int().min(1).max(65535),
        weight: z.number().int().min(1).max(65535),
        /**
         * The header versions this FS reads, given only when it does not read version 2: a direct
         * client then sends it version-1 requests, without the extension block. Absent: 1 and 2.
         */
        versions: z.array(z.number().int().min(1).max(255)).max(8).optional(),
      }),
    )
    .max(MAX_LOOKUP_ENDPOINTS),
  /** Ask again within this many ms for fresh weights (and a fresh ticket). */
  leaseMs: z.number().int().min(1).max(86_400_000),
  /** Absent when the FSs take connections without proof (no join secret: loopback only). */
  ticket: ticketGrantSchema.optional(),
  /**
   * Every listed FS declares the service idempotent: a direct client re-sends its calls after a
   * lost FS as the AS would. Absent (an older AS) counts as false.
   */
  idempotent: z.boolean().optional(),
});
export type LookupReply = z.infer<typeof lookupReplySchema>;

/** TICKET request body: the ticket, the client's nonce, and its proof of the session key. */
export const ticketRequestSchema = z.object({
  body: bytes(1, 4096),
  mac: bytes(32, 32),
  nonce: bytes(16, 64),
  proof: bytes(32, 32),
});

/** TICKET answer body (status OK): the FS's proof of the session key, and what it now grants. */
export const ticketReplySchema = z.object({
  proof: bytes(32, 32),
  keys: z.array(uint32).max(MAX_SERVICES_PER_FS),
  expiresAt: z.number().int().min(0),
});

/** RESOLVE request body. */
export const resolveRequestSchema = z.object({ name: token(MAX_NAME_LENGTH) });
