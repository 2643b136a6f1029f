// The SDK's public surface.
export type { AggregationSpecInput, ResultEnvelope } from '../shared/aggregation.ts';
export { loadConfig, type QuarryConfig } from '../shared/config.ts';
export { ERRORS, type ErrorCode, QuarryError } from '../shared/errors.ts';
export type { JobEvent, JobStatus } from '../shared/status.ts';
export {
  type AggregationHandle,
  createQuarry,
  QuarryClient,
  type QuarryOptions,
  type WaitOptions,
} from './client.ts';
