// The OTel variables as the configuration reads them: off unless an endpoint is set (and the SDK
// not disabled), the endpoint rules of the OTLP exporter spec, protocols, headers, samplers; bad
// values are QUARRY_ERR_CONFIG naming the variable. Off, startTracing loads nothing.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadConfig } from '../../shared/config.ts';
import { isQuarryError } from '../../shared/errors.ts';
import { silentLogger } from '../../shared/logger.ts';
import { retraced, startTracing, traced, tracer } from '../../shared/tracing.ts';
import { tracingConfig } from '../../shared/tracing-config.ts';

function configError(env: Record<string, string>, field: string): void {
  assert.throws(
    () => tracingConfig(env),
    (error: unknown) => isQuarryError(error) && error.code === 'QUARRY_ERR_CONFIG' && error.field === field,
  );
}

describe('tracing configuration', () => {
  test('off without an endpoint, whatever else is set; off when the SDK is disabled', () => {
    assert.equal(loadConfig({}).tracing, null);
    assert.equal(tracingConfig({ OTEL_SERVICE_NAME: 'x', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }), null);
    assert.equal(
      tracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'TRUE' }),
      null,
    );
    assert.notEqual(
      tracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'false' }),
      null,
    );
  });

  test('the general endpoint gets /v1/traces; the traces endpoint is used as given', () => {
    assert.equal(
      tracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' })?.url,
      'http://c:4318/v1/traces',
    );
    assert.equal(
      tracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'https://c/otlp/' })?.url,
      'https://c/otlp/v1/traces',
    );
    assert.equal(
      tracingConfig({
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://t:9999/custom',
      })?.url,
      'http://t:9999/custom',
    );
    configError({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }, 'OTEL_EXPORTER_OTLP_ENDPOINT');
    configError({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'ftp://c' }, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
  });

  test('protocols, headers, resource attributes and samplers', () => {
    const base = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' };
    const defaults = tracingConfig(base)!;
    assert.equal(defaults.protocol, 'http/protobuf');
    assert.equal(defaults.sampler, 'parentbased_always_on');
    assert.equal(defaults.samplerRatio, 1);
    assert.equal(defaults.serviceName, undefined);
    assert.equal(tracingConfig({ ...base, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' })?.protocol, 'http/json');
    assert.equal(
      tracingConfig({
        ...base,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json',
      })?.protocol,
      'http/json',
    );
    configError({ ...base, OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, 'OTEL_EXPORTER_OTLP_PROTOCOL');
    const full = tracingConfig({
      ...base,
      OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20abc, x-a=1',
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'x-a=2',
      OTEL_SERVICE_NAME: 'billing-quarry',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=prod',
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.25',
    })!;
    assert.deepEqual(full.headers, { authorization: 'Bearer abc', 'x-a': '2' });
    assert.equal(full.serviceName, 'billing-quarry');
    assert.deepEqual(full.resourceAttributes, { 'deployment.environment.name': 'prod' });
    assert.equal(full.sampler, 'parentbased_traceidratio');
    assert.equal(full.samplerRatio, 0.25);
    configError({ ...base, OTEL_EXPORTER_OTLP_HEADERS: 'novalue' }, 'OTEL_EXPORTER_OTLP_HEADERS');
    configError({ ...base, OTEL_TRACES_SAMPLER: 'sometimes' }, 'OTEL_TRACES_SAMPLER');
    configError(
      { ...base, OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '2' },
      'OTEL_TRACES_SAMPLER_ARG',
    );
  });

  test('off, startTracing loads nothing and traced() runs the work without a span', async () => {
    assert.equal(await startTracing(null, { serviceName: 'quarry-test', logger: silentLogger() }), undefined);
    assert.equal(tracer(), undefined);
    let seen: unknown = 'not called';
    assert.equal(
      await traced('x', {}, async (span) => {
        seen = span;
        return 7;
      }),
      7,
    );
    assert.equal(seen, undefined);
    const payload = { v: 1 as const, trace: { parent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01` } };
    assert.equal(retraced(payload), payload, 'a retry keeps its payload as it is');
  });
});
