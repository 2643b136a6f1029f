// Traces, the side every module sees: whether this process exports them, spans around work, and
// the W3C trace context a job carries from its enqueue to its attempts. Off (config.tracing null),
// nothing of OpenTelemetry is loaded: tracer() is undefined and traced() runs its work directly;
// the SDK (shared/tracing-sdk.ts) is imported only by startTracing. Only entrypoints start it.
import type { Attributes, Span } from '@opentelemetry/api';
import { z } from 'zod';
import type { Logger } from './logger.ts';
import type { TracingConfig } from './tracing-config.ts';

export type { Span };

export type SpanKindName = 'internal' | 'server' | 'client' | 'producer' | 'consumer';

/** A W3C trace context as it travels in a job's data (`trace`) and its status record's payload. */
export interface JobTrace {
  /** The `traceparent` of the span that enqueued the job: its attempts' spans join that trace. */
  readonly parent?: string;
  readonly state?: string;
  /** `traceparent`s of earlier traces of the same job (a retry's original): span links. */
  readonly links?: readonly string[];
}

const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;
/** How many earlier traces a job remembers (each retry adds one). */
export const MAX_TRACE_LINKS = 8;

export const JobTraceSchema = z.strictObject({
  parent: z.string().regex(TRACEPARENT).optional(),
  state: z.string().max(512).optional(),
  links: z.array(z.string().regex(TRACEPARENT)).max(MAX_TRACE_LINKS).optional(),
});

export interface QuarrySpanOptions {
  kind?: SpanKindName;
  attributes?: Attributes;
  /** Start under this context instead of the active span (a job's attempt under its enqueue). */
  parent?: JobTrace;
  /** Incoming HTTP headers to take `traceparent`/`tracestate` from, instead of the active span. */
  headers?: Record<string, string | string[] | undefined>;
  /** `traceparent`s this span links to. */
  links?: readonly string[];
  /** Epoch milliseconds; default now. */
  startTimeMs?: number;
}

export interface QuarryTracer {
  /** Runs `work` in a new span made active; ends it when `work` settles, recording a failure. */
  inSpan<T>(name: string, options: QuarrySpanOptions, work: (span: Span) => Promise<T>): Promise<T>;
  /** Starts a span that is not made active (an HTTP request's: hooks end it). */
  startSpan(name: string, options: QuarrySpanOptions): Span;
  /** Runs `fn` with `span` active: spans started inside are its children. */
  withActive<T>(span: Span, fn: () => T): T;
  /** Marks a span failed with `error` (an exception event and an error status). */
  fail(span: Span, error: unknown): void;
  /** Sets attributes on the active span, if any. */
  annotate(attributes: Attributes): void;
  /** The active span's context, for a job's data; undefined when no span is active. */
  jobTrace(): JobTrace | undefined;
  /** Exports what is buffered, then stops; the global provider is unregistered. Safe twice. */
  shutdown(): Promise<void>;
}

let active: QuarryTracer | undefined;

/** This process's tracer, or undefined when tracing is off. */
export function tracer(): QuarryTracer | undefined {
  return active;
}

/** Runs `work` in a span when tracing is on; otherwise calls it at once with no span. */
export function traced<T>(
  name: string,
  options: QuarrySpanOptions,
  work: (span: Span | undefined) => Promise<T>,
): Promise<T> {
  return active === undefined ? work(undefined) : active.inSpan(name, options, work);
}

/**
 * A retried job's trace: the retry's own (the active span) as parent, the earlier parents as
 * links. Off, or without an active span, the payload is returned as it is.
 */
export function retraced<T extends { trace?: JobTrace }>(payload: T): T {
  const now = active?.jobTrace();
  if (now === undefined) return payload;
  const before = payload.trace;
  const links = [...(before?.parent === undefined ? [] : [before.parent]), ...(before?.links ?? [])];
  return {
    ...payload,
    trace: { ...now, ...(links.length === 0 ? {} : { links: links.slice(0, MAX_TRACE_LINKS) }) },
  };
}

export interface StartTracingOptions {
  /** The service name when OTEL_SERVICE_NAME is not set (quarry-api, quarry-worker). */
  serviceName: string;
  logger: Logger;
}

/**
 * Starts the SDK when `config` is set (the OTLP exporter, a batch span processor, the W3C
 * propagator, an AsyncLocalStorage context manager) and makes it this process's tracer. Null
 * config: nothing is imported, undefined is returned. For entrypoints (api/main.ts, workers/main.ts).
 */
export async function startTracing(
  config: TracingConfig | null,
  options: StartTracingOptions,
): Promise<QuarryTracer | undefined> {
  if (config === null) return undefined;
  if (active !== undefined) return active;
  const { createTracer } = await import('./tracing-sdk.ts');
  const created = createTracer(config, options);
  const handle: QuarryTracer = {
    ...created,
    async shutdown() {
      if (active === handle) active = undefined;
      await created.shutdown();
    },
  };
  active = handle;
  return handle;
}
