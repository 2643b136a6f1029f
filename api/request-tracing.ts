// One SERVER span per HTTP request, when tracing is on (buildApp installs these hooks only then):
// started on arrival under the request's W3C `traceparent`, if any, made active for the route's
// handler (so the enqueue it makes, and through the job the worker's spans, join its trace), ended
// with the response. Named and attributed by OpenTelemetry's HTTP semantic conventions.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { QuarryTracer, Span } from '../shared/tracing.ts';

export function registerRequestTracing(app: FastifyInstance, traces: QuarryTracer): void {
  const spans = new WeakMap<FastifyRequest, Span>();
  const finish = (request: FastifyRequest, status: number | undefined, error?: unknown) => {
    const span = spans.get(request);
    if (span === undefined) return;
    spans.delete(request);
    if (status !== undefined) span.setAttribute('http.response.status_code', status);
    const tenant = request.quarry?.tenant;
    if (tenant !== undefined) span.setAttribute('quarry.tenant', tenant);
    if (error !== undefined) traces.fail(span, error);
    else if (status !== undefined && status >= 500) {
      span.setAttribute('error.type', String(status));
      traces.fail(span, new Error(`HTTP ${status}`));
    }
    span.end();
  };

  app.addHook('onRequest', (request, _reply, done) => {
    const route = request.routeOptions.url;
    const path = request.url.split('?', 1)[0] ?? request.url;
    spans.set(
      request,
      traces.startSpan(route === undefined ? request.method : `${request.method} ${route}`, {
        kind: 'server',
        headers: request.headers,
        attributes: {
          'http.request.method': request.method,
          'url.path': path,
          'url.scheme': request.protocol,
          ...(route === undefined ? {} : { 'http.route': route }),
          ...(request.headers['user-agent'] === undefined
            ? {}
            : { 'user_agent.original': request.headers['user-agent'] }),
          'client.address': request.ip,
          'quarry.request_id': request.id,
        },
      }),
    );
    done();
  });
  // After the body is read and the caller authenticated: the handler runs inside the span.
  app.addHook('preHandler', (request, _reply, done) => {
    const span = spans.get(request);
    if (span === undefined) done();
    else traces.withActive(span, done);
  });
  app.addHook('onResponse', (request, reply, done) => {
    finish(request, reply.statusCode);
    done();
  });
  app.addHook('onRequestAbort', (request, done) => {
    finish(request, undefined, new Error('the client closed the request'));
    done();
  });
}
