// The SDK's public surface.
export type { Activity, ActivityMinute, QueueDepth, RunPercentiles } from '../shared/activity.ts';
export type { AggregationSpecInput, ResultEnvelope } from '../shared/aggregation.ts';
export { loadConfig, type QuarryConfig } from '../shared/config.ts';
export { ERRORS, type ErrorCode, QuarryError } from '../shared/errors.ts';
export type { HistoryPage, HistoryQueryInput } from '../shared/job-history.ts';
export type { QueryHit, QueryResult } from '../shared/search/query.ts';
export type { SearchRequest } from '../shared/search/request.ts';
export type { JobEvent, JobStatus } from '../shared/status.ts';
export type { DeliveryInfo } from '../shared/webhook-deliveries.ts';
export {
  verifyWebhook,
  type WebhookEvent,
  type WebhookEventType,
  type WebhookInfo,
  type WebhookRequest,
} from '../shared/webhooks.ts';
export {
  type AggregationHandle,
  type BatchItem,
  createQuarry,
  QuarryClient,
  type QuarryOptions,
  type WaitOptions,
} from './client.ts';
export type { Jobs, RetryHandle } from './history.ts';
