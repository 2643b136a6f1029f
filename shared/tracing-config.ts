// OpenTelemetry's standard variables, read once with the rest of the configuration (config.ts):
// whether traces are exported at all, where to, how, and which share of them. Null when no OTLP
// endpoint is set or OTEL_SDK_DISABLED=true: then no SDK is loaded (shared/tracing.ts).
import { QuarryError } from './errors.ts';

export const TRACE_PROTOCOLS = ['http/protobuf', 'http/json'] as const;
export type TraceProtocol = (typeof TRACE_PROTOCOLS)[number];

export const TRACE_SAMPLERS = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const;
export type TraceSamplerName = (typeof TRACE_SAMPLERS)[number];

export interface TracingConfig {
  /** Where spans are POSTed: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as given, else OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces. */
  readonly url: string;
  readonly protocol: TraceProtocol;
  /** OTEL_EXPORTER_OTLP_HEADERS, then OTEL_EXPORTER_OTLP_TRACES_HEADERS over them. */
  readonly headers: Readonly<Record<string, string>>;
  /** OTEL_SERVICE_NAME; absent, each process names itself (quarry-api, quarry-worker). */
  readonly serviceName: string | undefined;
  /** OTEL_RESOURCE_ATTRIBUTES (key=value pairs). */
  readonly resourceAttributes: Readonly<Record<string, string>>;
  readonly sampler: TraceSamplerName;
  /** OTEL_TRACES_SAMPLER_ARG: the ratio of the traceidratio samplers, 0 to 1 (default 1). */
  readonly samplerRatio: number;
}

/** The variables tracingConfig reads (README's Tracing section lists them). */
export const TRACING_VARIABLES = [
  'OTEL_SDK_DISABLED',
  'OTEL_EXPORTER_OTLP_ENDPOINT',
  'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
  'OTEL_EXPORTER_OTLP_PROTOCOL',
  'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL',
  'OTEL_EXPORTER_OTLP_HEADERS',
  'OTEL_EXPORTER_OTLP_TRACES_HEADERS',
  'OTEL_SERVICE_NAME',
  'OTEL_RESOURCE_ATTRIBUTES',
  'OTEL_TRACES_SAMPLER',
  'OTEL_TRACES_SAMPLER_ARG',
] as const;

function invalid(field: string, message: string): QuarryError {
  return new QuarryError('QUARRY_ERR_CONFIG', `${field}: ${message}`, { field });
}

/** The OTel list form `k1=v1,k2=v2` (values percent-encoded, W3C Baggage style). */
export function parseKeyValues(text: string | undefined, field: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (text === undefined) return out;
  for (const item of text.split(',')) {
    if (item.trim() === '') continue;
    const at = item.indexOf('=');
    const key = at === -1 ? '' : item.slice(0, at).trim();
    if (key === '') throw invalid(field, `"${item.trim()}" is not key=value (a comma-separated list)`);
    try {
      out[key] = decodeURIComponent(item.slice(at + 1).trim());
    } catch {
      throw invalid(field, `the value of "${key}" is not valid percent-encoding`);
    }
  }
  return out;
}

function endpoint(value: string, field: string): URL {
  if (!URL.canParse(value)) throw invalid(field, 'must be a URL (http:// or https://)');
  const url = new URL(value);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw invalid(field, 'must be an http:// or https:// URL');
  }
  return url;
}

export function tracingConfig(env: Record<string, string | undefined>): TracingConfig | null {
  const get = (name: (typeof TRACING_VARIABLES)[number]) => {
    const value = env[name]?.trim();
    return value === undefined || value === '' ? undefined : value;
  };
  const disabled = get('OTEL_SDK_DISABLED');
  if (disabled !== undefined && disabled.toLowerCase() === 'true') return null;
  const specific = get('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
  const general = get('OTEL_EXPORTER_OTLP_ENDPOINT');
  let url: string;
  if (specific !== undefined) {
    url = endpoint(specific, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT').href;
  } else if (general !== undefined) {
    // The general endpoint is a base: the signal's path is appended (the OTLP exporter spec).
    const base = endpoint(general, 'OTEL_EXPORTER_OTLP_ENDPOINT').href;
    url = `${base.endsWith('/') ? base : `${base}/`}v1/traces`;
  } else {
    return null;
  }
  const protocolField = get('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL')
    ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'
    : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const protocol = get(protocolField) ?? 'http/protobuf';
  if (!(TRACE_PROTOCOLS as readonly string[]).includes(protocol)) {
    throw invalid(protocolField, `"${protocol}" is not supported: use ${TRACE_PROTOCOLS.join(' or ')}`);
  }
  const sampler = (get('OTEL_TRACES_SAMPLER') ?? 'parentbased_always_on').toLowerCase();
  if (!(TRACE_SAMPLERS as readonly string[]).includes(sampler)) {
    throw invalid('OTEL_TRACES_SAMPLER', `"${sampler}" is not one of ${TRACE_SAMPLERS.join(', ')}`);
  }
  const arg = get('OTEL_TRACES_SAMPLER_ARG');
  const samplerRatio = arg === undefined ? 1 : Number(arg);
  if (sampler.endsWith('traceidratio') && !(samplerRatio >= 0 && samplerRatio <= 1)) {
    throw invalid('OTEL_TRACES_SAMPLER_ARG', 'must be a ratio from 0 to 1');
  }
  return Object.freeze({
    url,
    protocol: protocol as TraceProtocol,
    headers: Object.freeze({
      ...parseKeyValues(get('OTEL_EXPORTER_OTLP_HEADERS'), 'OTEL_EXPORTER_OTLP_HEADERS'),
      ...parseKeyValues(get('OTEL_EXPORTER_OTLP_TRACES_HEADERS'), 'OTEL_EXPORTER_OTLP_TRACES_HEADERS'),
    }),
    serviceName: get('OTEL_SERVICE_NAME'),
    resourceAttributes: Object.freeze(
      parseKeyValues(get('OTEL_RESOURCE_ATTRIBUTES'), 'OTEL_RESOURCE_ATTRIBUTES'),
    ),
    sampler: sampler as TraceSamplerName,
    samplerRatio,
  });
}
