// The OpenTelemetry SDK behind shared/tracing.ts, imported only when traces are on: a tracer
// provider with the configured sampler, a batch span processor and an OTLP/HTTP exporter (JSON or
// protobuf), registered as the global provider with the W3C propagator and an AsyncLocalStorage
// context manager (so spans started inside a span's work are its children). The SDK's own
// complaints (an export that failed) go to the process's logger.
import {
  type Context,
  context,
  DiagLogLevel,
  diag,
  type Link,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { parseTraceParent, setGlobalErrorHandler, W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter as JsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtobufTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  type Sampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import type { Logger } from './logger.ts';
import type { JobTrace, QuarrySpanOptions, QuarryTracer, SpanKindName } from './tracing.ts';
import type { TracingConfig } from './tracing-config.ts';

const KINDS: Record<SpanKindName, SpanKind> = {
  internal: SpanKind.INTERNAL,
  server: SpanKind.SERVER,
  client: SpanKind.CLIENT,
  producer: SpanKind.PRODUCER,
  consumer: SpanKind.CONSUMER,
};

const INSTRUMENTATION = 'quarry';

function sampler(config: TracingConfig): Sampler {
  const ratio = () => new TraceIdRatioBasedSampler(config.samplerRatio);
  switch (config.sampler) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return ratio();
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: ratio() });
    default:
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function createTracer(
  config: TracingConfig,
  options: { serviceName: string; logger: Logger },
): QuarryTracer {
  const log = options.logger.child({ component: 'tracing' });
  diag.setLogger(
    {
      error: (message, ...args) => log.warn({ args }, message),
      warn: (message, ...args) => log.warn({ args }, message),
      info: (message, ...args) => log.debug({ args }, message),
      debug: () => undefined,
      verbose: () => undefined,
    },
    DiagLogLevel.WARN,
  );
  setGlobalErrorHandler((err) => log.warn({ err }, 'trace export failed'));
  const exporterOptions = { url: config.url, headers: { ...config.headers } };
  const exporter =
    config.protocol === 'http/json'
      ? new JsonTraceExporter(exporterOptions)
      : new ProtobufTraceExporter(exporterOptions);
  const provider = new TracerProvider({
    sampler: sampler(config),
    resource: defaultResource().merge(
      resourceFromAttributes({
        ...config.resourceAttributes,
        [ATTR_SERVICE_NAME]: config.serviceName ?? options.serviceName,
      }),
    ),
    spanProcessors: [new BatchSpanProcessor({ exporter })],
  });
  const contextManager = new AsyncLocalStorageContextManager().enable();
  const propagator = new W3CTraceContextPropagator();
  trace.setGlobalTracerProvider(provider);
  context.setGlobalContextManager(contextManager);
  propagation.setGlobalPropagator(propagator);
  const tracer = provider.getTracer(INSTRUMENTATION);
  log.info({ url: config.url, protocol: config.protocol, sampler: config.sampler }, 'exporting traces');

  const getter = {
    keys: (carrier: Record<string, string | string[] | undefined>) => Object.keys(carrier),
    get: (carrier: Record<string, string | string[] | undefined>, key: string) => carrier[key],
  };
  const fromJob = (job: JobTrace): Context =>
    job.parent === undefined
      ? ROOT_CONTEXT
      : propagator.extract(
          ROOT_CONTEXT,
          { traceparent: job.parent, ...(job.state === undefined ? {} : { tracestate: job.state }) },
          getter,
        );
  const parentOf = (o: QuarrySpanOptions): Context => {
    if (o.parent !== undefined) return fromJob(o.parent);
    if (o.headers !== undefined) return propagator.extract(ROOT_CONTEXT, o.headers, getter);
    return context.active();
  };
  const linksOf = (o: QuarrySpanOptions): Link[] | undefined => {
    const all = [...(o.parent?.links ?? []), ...(o.links ?? [])];
    const links: Link[] = [];
    for (const traceparent of all) {
      const spanContext = parseTraceParent(traceparent);
      if (spanContext !== null) links.push({ context: spanContext });
    }
    return links.length === 0 ? undefined : links;
  };
  const start = (name: string, o: QuarrySpanOptions): Span => {
    const links = linksOf(o);
    return tracer.startSpan(
      name,
      {
        kind: KINDS[o.kind ?? 'internal'],
        ...(o.attributes === undefined ? {} : { attributes: o.attributes }),
        ...(links === undefined ? {} : { links }),
        ...(o.startTimeMs === undefined ? {} : { startTime: o.startTimeMs }),
      },
      parentOf(o),
    );
  };
  const fail = (span: Span, error: unknown) => {
    span.recordException(error instanceof Error ? error : new Error(String(error)));
    const code = (error as { code?: unknown } | null)?.code;
    if (typeof code === 'string') span.setAttribute('error.type', code);
    span.setStatus({ code: SpanStatusCode.ERROR, message: errorMessage(error) });
  };
  let stopping: Promise<void> | undefined;

  return {
    async inSpan(name, o, work) {
      const span = start(name, o);
      try {
        return await context.with(trace.setSpan(context.active(), span), () => work(span));
      } catch (error) {
        fail(span, error);
        throw error;
      } finally {
        span.end();
      }
    },
    startSpan: start,
    withActive(span, fn) {
      return context.with(trace.setSpan(context.active(), span), fn);
    },
    fail,
    annotate(attributes) {
      trace.getSpan(context.active())?.setAttributes(attributes);
    },
    jobTrace() {
      const span = trace.getSpan(context.active());
      if (span === undefined || !span.spanContext().traceId) return undefined;
      const carrier: Record<string, string> = {};
      propagator.inject(context.active(), carrier, {
        set: (c, key, value) => {
          c[key] = value;
        },
      });
      if (carrier.traceparent === undefined) return undefined;
      return {
        parent: carrier.traceparent,
        ...(carrier.tracestate === undefined ? {} : { state: carrier.tracestate }),
      };
    },
    shutdown() {
      stopping ??= (async () => {
        try {
          await provider.shutdown();
        } finally {
          trace.disable();
          context.disable();
          propagation.disable();
          diag.disable();
        }
      })();
      return stopping;
    },
  };
}
