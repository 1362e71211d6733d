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
  /** AS → FS on a pool connection: send me your service table (used for FSs added by address). */
  DESCRIBE: 5,
} as const;

export type EventKindName = keyof typeof EventKind;

const uint32 = z.number().int().min(0).max(0xffffffff);

export const serviceDescriptorSchema = z.object({
  key: uint32,
  idempotent: z.boolean().default(false),
  timeoutMs: z.number().int().min(0).optional(),
});
export type ServiceDescriptor = z.infer<typeof serviceDescriptorSchema>;

export const helloSchema = z.object({
  name: z.string().min(1).max(200),
  poolType: z.number().int().min(0).max(0xffff),
  standby: z.boolean().default(false),
  endpoint: z.object({ host: z.string().min(1), port: z.number().int().min(1).max(65535) }),
  services: z.array(serviceDescriptorSchema).max(100_000),
  pid: z.number().int().optional(),
  version: z.string().optional(),
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
  inflight: z.number().int().min(0),
});
export type LoadReport = z.infer<typeof loadSchema>;

/** AS → FS: what the AS accepts on this connection. */
export const describeRequestSchema = z.object({
  maxBodyBytes: z.number().int().positive().optional(),
});

export const describeReplySchema = z.object({
  name: z.string().min(1),
  poolType: z.number().int().min(0).max(0xffff),
  standby: z.boolean().default(false),
  services: z.array(serviceDescriptorSchema),
});
export type DescribeReply = z.infer<typeof describeReplySchema>;
