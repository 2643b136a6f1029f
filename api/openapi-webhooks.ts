// The OpenAPI document's part about webhooks: the named schemas (the request body from the zod
// schema that validates it) and the route docs of /v1/webhooks. Kept apart from
// openapi-schemas.ts and openapi-routes.ts (both long already); plugins/openapi.ts merges them.
import type { FastifySchema } from 'fastify';
import { MAX_DELIVERIES_LISTED } from '../producers/webhooks.ts';
import type { ErrorCode } from '../shared/errors.ts';
import { WEBHOOK_EVENT_TYPES, WEBHOOK_NAME_PATTERN, WebhookRequestSchema } from '../shared/webhooks.ts';
import { AUTH_CODES } from './openapi-routes.ts';
import { errorResponses, int, obj, requestSchemaOf, type Schema, str } from './openapi-schemas.ts';

const nullable = (schema: Schema): Schema => ({ anyOf: [schema, { type: 'null' }] });
const dateTime = str({ format: 'date-time' });
const webhookName = str({ pattern: WEBHOOK_NAME_PATTERN.source });
const eventType = str({ enum: [...WEBHOOK_EVENT_TYPES] });

const webhookRequestExample = {
  url: 'https://hooks.example.com/quarry',
  events: ['job.completed', 'job.failed'],
  secret: 'whsec_2b7f0c1e9a8d4f3b6c5e',
};
const webhookExample = {
  name: 'billing',
  url: 'https://hooks.example.com/quarry',
  events: ['job.completed', 'job.failed'],
  secretHint: '…5c5e',
  createdAt: '2026-11-27T10:00:00.000Z',
  updatedAt: '2026-11-27T10:00:00.000Z',
};
const deliveryExample = {
  id: 'whd_4f1d2c3b4a5968778695a4b3',
  webhook: 'billing',
  type: 'job.completed',
  jobId: 'agg-3f1c0e8a9b7d4c2e1f0a5b6c7d8e9f01',
  status: 'pending',
  attempts: 2,
  createdAt: '2026-11-27T10:00:00.000Z',
  nextAttemptAt: '2026-11-27T10:00:06.000Z',
  giveUpAt: '2026-11-28T10:00:00.000Z',
  lastAttemptAt: '2026-11-27T10:00:02.000Z',
  lastStatus: 503,
  lastBody: 'upstream unavailable',
  lastError: 'HTTP 503',
  deliveredAt: null,
};

export const WEBHOOK_SCHEMAS = {
  WebhookRequest: { ...requestSchemaOf(WebhookRequestSchema), examples: [webhookRequestExample] },
  Webhook: {
    ...obj({
      name: webhookName,
      url: str(),
      events: { type: 'array', items: eventType },
      secretHint: str({
        description: 'The secret is never answered back: only `…` and its last four characters.',
      }),
      createdAt: dateTime,
      updatedAt: dateTime,
    }),
    examples: [webhookExample],
  },
  WebhookList: obj({ webhooks: { type: 'array', items: { $ref: '#/components/schemas/Webhook' } } }),
  WebhookDelivery: {
    ...obj({
      id: str({ pattern: '^whd_[0-9a-f]{24}$', description: 'Also the body `id` and `x-quarry-delivery`.' }),
      webhook: webhookName,
      type: eventType,
      jobId: nullable(str()),
      status: str({ enum: ['pending', 'delivered', 'failed', 'dropped'] }),
      attempts: int({ minimum: 0 }),
      createdAt: dateTime,
      nextAttemptAt: nullable(dateTime),
      giveUpAt: dateTime,
      lastAttemptAt: nullable(dateTime),
      lastStatus: nullable(int()),
      lastBody: nullable(str({ description: 'The head of the last answer (at most 1 KiB).' })),
      lastError: nullable(str()),
      deliveredAt: nullable(dateTime),
    }),
    examples: [deliveryExample],
  },
  WebhookDeliveryList: obj({
    deliveries: { type: 'array', items: { $ref: '#/components/schemas/WebhookDelivery' } },
  }),
} satisfies Record<string, Schema>;

const json = (name: keyof typeof WEBHOOK_SCHEMAS, description: string, example: unknown): Schema => ({
  description,
  content: { 'application/json': { schema: { $ref: `#/components/schemas/${name}` }, example } },
});

const FAULTS: readonly ErrorCode[] = [
  'QUARRY_ERR_INTERNAL',
  'QUARRY_ERR_REDIS_UNAVAILABLE',
  'QUARRY_ERR_REDIS_REFUSED',
];
const BODY: readonly ErrorCode[] = [
  'QUARRY_ERR_VALIDATION',
  'QUARRY_ERR_BODY_INVALID_JSON',
  'QUARRY_ERR_BODY_TOO_LARGE',
  'QUARRY_ERR_UNSUPPORTED_MEDIA_TYPE',
];
const errors = (codes: readonly ErrorCode[], body = false) =>
  errorResponses([...(body ? BODY : []), ...AUTH_CODES, ...codes, ...FAULTS], { timeout: body });
const params = obj({ name: webhookName });

export const WEBHOOK_ROUTE_DOCS: Readonly<Record<string, FastifySchema>> = {
  'PUT /v1/webhooks/:name': {
    operationId: 'putWebhook',
    tags: ['webhooks'],
    summary: 'Register or replace a webhook',
    description:
      'Each event of the listed types becomes a signed POST to `url` (`x-quarry-signature: t=<unix s>,v1=<hex ' +
      'HMAC-SHA256(secret, "<t>.<body>")>`, `x-quarry-delivery: <id>`), retried until it gets a 2xx or ' +
      'QUARRY_WEBHOOK_RETRY_FOR_S passes. The host must resolve to public addresses (or be listed in ' +
      'QUARRY_WEBHOOK_ALLOW).',
    params,
    body: {
      content: {
        'application/json': {
          schema: { $ref: '#/components/schemas/WebhookRequest' },
          example: webhookRequestExample,
        },
      },
    },
    response: {
      200: json('Webhook', 'The webhook as registered (the secret only by its hint).', webhookExample),
      ...errors(['QUARRY_ERR_WEBHOOK_TARGET', 'QUARRY_ERR_WEBHOOK_LIMIT'], true),
    },
  },
  'GET /v1/webhooks': {
    operationId: 'listWebhooks',
    tags: ['webhooks'],
    summary: "This tenant's webhooks",
    response: {
      200: json('WebhookList', 'The webhooks, by name.', { webhooks: [webhookExample] }),
      ...errors([]),
    },
  },
  'GET /v1/webhooks/:name': {
    operationId: 'getWebhook',
    tags: ['webhooks'],
    summary: 'One webhook',
    params,
    response: {
      200: json('Webhook', 'The webhook.', webhookExample),
      ...errors(['QUARRY_ERR_VALIDATION', 'QUARRY_ERR_WEBHOOK_NOT_FOUND']),
    },
  },
  'DELETE /v1/webhooks/:name': {
    operationId: 'deleteWebhook',
    tags: ['webhooks'],
    summary: 'Remove a webhook and its log (its pending deliveries are dropped)',
    params,
    response: {
      204: { description: 'Removed.', type: 'null' },
      ...errors(['QUARRY_ERR_VALIDATION', 'QUARRY_ERR_WEBHOOK_NOT_FOUND']),
    },
  },
  'GET /v1/webhooks/:name/deliveries': {
    operationId: 'listWebhookDeliveries',
    tags: ['webhooks'],
    summary: "A webhook's newest deliveries: status, attempts, last answer, next attempt",
    params,
    querystring: obj({ limit: int({ minimum: 1, maximum: MAX_DELIVERIES_LISTED, default: 50 }) }, []),
    response: {
      200: json('WebhookDeliveryList', 'Newest first.', { deliveries: [deliveryExample] }),
      ...errors(['QUARRY_ERR_VALIDATION', 'QUARRY_ERR_WEBHOOK_NOT_FOUND']),
    },
  },
};
