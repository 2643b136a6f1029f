// One job attempt as a trace sees it, when tracing is on: under the enqueue's context carried in
// the job's data (`trace`), a `wait` span from the enqueue to the first start (first attempt only,
// as the wait metric: a retry's backoff is not queue time), then the attempt's `process` span,
// active while the attempt runs so the engine and store spans are its children.
import type { Job } from 'bullmq';
import { type JobTrace, JobTraceSchema, type QuarryTracer } from '../shared/tracing.ts';

function jobTraceOf(data: unknown): JobTrace {
  // The payload is checked later, inside the attempt; a bad trace only loses the parent.
  const parsed = JobTraceSchema.safeParse((data as { trace?: unknown } | null)?.trace);
  return parsed.success && parsed.data !== undefined ? parsed.data : {};
}

export function traceAttempt<T>(
  traces: QuarryTracer,
  /** The job's type, which is also its queue's name. */
  queue: string,
  job: Job,
  run: () => Promise<T>,
): Promise<T> {
  const jobId = job.id!;
  const tenant = (job.data as { tenant?: unknown } | null)?.tenant;
  const common = {
    'messaging.system': 'bullmq',
    'messaging.destination.name': queue,
    'messaging.message.id': jobId,
    'quarry.job.id': jobId,
    ...(typeof tenant === 'string' ? { 'quarry.tenant': tenant } : {}),
  };
  const attempt = job.attemptsMade + job.stalledCounter + 1;
  const trace = jobTraceOf(job.data);
  // Under the enqueue (parent) or under the active wait span; the links either way.
  const processSpan = (parent: JobTrace | undefined) =>
    traces.inSpan(
      `process ${queue}`,
      {
        kind: 'consumer',
        ...(parent === undefined ? { links: trace.links ?? [] } : { parent }),
        attributes: {
          ...common,
          'messaging.operation.type': 'process',
          'messaging.operation.name': 'process',
          'quarry.attempt': attempt,
          'quarry.job.name': job.name,
        },
      },
      () => run(),
    );
  if (attempt > 1 || job.processedOn === undefined) return processSpan(trace);
  const wait = traces.startSpan(`wait ${queue}`, {
    parent: trace,
    startTimeMs: job.timestamp,
    attributes: { ...common, 'quarry.wait_ms': Math.max(0, job.processedOn - job.timestamp) },
  });
  wait.end(Math.max(job.timestamp, job.processedOn));
  // The attempt under its wait: the trace reads enqueue → wait → process.
  return traces.withActive(wait, () => processSpan(undefined));
}
