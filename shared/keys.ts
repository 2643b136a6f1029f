// The Redis key scheme. Every key carries the configured prefix, so environments and tests are
// isolated by prefix. Apps may read these keys directly; README.md documents them.
//
//   queue Redis (durable, noeviction)
//     <prefix>:<queue>:*          BullMQ's own keys (queues `aggregate`, `index`)
//     <prefix>:job:<jobId>        status record, a hash (see status.ts); TTL QUARRY_STATUS_TTL_S
//     <prefix>:data:<jobId>       inline dataset of a queued job (canonical JSON); deleted when done
//     <prefix>:events             pub/sub channel: one JSON message per job state change
//     <prefix>:control            pub/sub channel: {type:"cancel", jobId} for worker processes
//     <prefix>:cancel:<jobId>     cancellation requested (short TTL): checked when a job starts
//     <prefix>:index:<c>:seq      last index version number given out for collection <c>
//                                 (versions are max(seq + 1, Redis clock in ms): never repeat)
//     <prefix>:index:<c>:current  the version searches use (switched atomically, only forward)
//     <prefix>:index:<c>:deleted  tombstone of a deleted collection: the last version given out
//                                 before the delete (TTL 7 days; removed when a new build goes live)
//     <prefix>:index:<c>:building sorted set: versions reserved by full builds not yet published
//                                 (scored by Redis time in ms; pruned after the index timeout)
//     <prefix>:index:<c>:updates  sorted set: document updates acknowledged and not yet applied,
//                                 job ids scored by their place in acknowledgement order
//     <prefix>:index:<c>:update-seq  the last such place given out
//     <prefix>:index:<c>:updates-applied  sorted set: the newest 100,000 applied updates, job
//                                 ids scored by the version that applied them
//     <prefix>:index:<c>:v<n>     version n's metadata hash (chunks, bytes, documents, terms, …)
//     <prefix>:index:<c>:v<n>:<i> chunk i of version n's binary index; old versions expire
//     <prefix>:index:<c>:v<n>:d<i> chunk i of version n's documents (projected JSON, for updates);
//                                 expire and go with the version
//     <prefix>:indexes            set of collection names
//     <prefix>:schedule:<name>    a scheduled aggregation: its spec and timing (hash)
//     <prefix>:schedules          set of schedule names
//     <prefix>:alias:<name>       hash {resultKey, refreshedAt}: the schedule's newest result
//     <prefix>:index-events       pub/sub channel: {collection, version} when a version goes live,
//                                 {collection, deleted: true} when a collection is deleted
//     <prefix>:live-jobs          sorted set, all tenants: `<tenant>/<jobId>` of every job whose
//                                 record is queued/active, scored by when it was last looked at
//                                 (enqueue, or the reconciler's last check); left on final states
//     <prefix>:reconcile-lock     held (PX one interval) by the worker whose turn it is to reconcile
//     <prefix>:history            sorted set: job ids of the tenant's status records, scored by
//                                 createdAt (ms); trimmed by age (status TTL) and count
//                                 (QUARRY_HISTORY_MAX_JOBS); GET /v1/jobs reads it (job-history.ts)
//     <prefix>:history-all        the same over all tenants, members `<tenant>/<jobId>` (admin view)
//     <prefix>:activity:<minute>  hash of the jobs that ended in that minute (minutes since the
//                                 epoch): counts by final state and a run-time histogram
//                                 (activity.ts); TTL QUARRY_ACTIVITY_WINDOW_S + 60 s
//     <prefix>:activity-all:<minute>  the same summed over all tenants
//     <prefix>:fair:<queue>:clock hash: fair dispatch's virtual clock `v` and each tenant's lane
//                                 clocks `<tenant>|<class>` (shared/fairness.ts; with API keys only)
//     <prefix>:t:<t>:fair:queued  set: the tenant's queued job ids (maxQueued, gauges)
//     <prefix>:t:<t>:fair:active  sorted set: the tenant's running job ids, scored by lease end
//     <prefix>:webhooks           hash: webhook name -> its definition (JSON, shared/webhooks.ts)
//     <prefix>:webhook-log:<name> sorted set: the webhook's delivery ids by creation (bounded)
//     <prefix>:webhook-delivery:<id>  hash: one delivery (body, status, attempts, last answer)
//     <prefix>:webhook-outbox     stream, all tenants: final states and live index versions of
//                                 tenants with webhooks, written by the script that made them
//     <prefix>:webhook-due        sorted set, all tenants: `<tenant>/<deliveryId>` by next attempt
//   cache Redis (evicting: allkeys-lru)
//     <prefix>:result:<resultKey> result envelope, JSON bytes as served; TTL QUARRY_RESULT_TTL_S

export const QUEUE_NAMES = { aggregate: 'aggregate', index: 'index' } as const;
export type QueueName = (typeof QUEUE_NAMES)[keyof typeof QUEUE_NAMES];

/** A result key: 32 lowercase hex digits (128 bits of SHA-256). */
export const RESULT_KEY_PATTERN = /^[0-9a-f]{32}$/;
/** A job id: a kind tag and a result key (aggregations) or a unique suffix (index builds). */
export const JOB_ID_PATTERN = /^(agg|idx)-[0-9a-z_-]{8,100}$/;

/** Tenant names (from QUARRY_API_KEYS): they become part of keys. */
export const TENANT_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export interface KeyScheme {
  readonly prefix: string;
  /** The tenant whose keys these are; undefined for the default (no API keys configured). */
  readonly tenant: string | undefined;
  status(jobId: string): string;
  inlineData(jobId: string): string;
  result(resultKey: string): string;
  readonly eventsChannel: string;
  readonly controlChannel: string;
  cancelFlag(jobId: string): string;
  indexSeq(collection: string): string;
  indexCurrent(collection: string): string;
  indexDeleted(collection: string): string;
  indexBuilding(collection: string): string;
  indexUpdates(collection: string): string;
  indexUpdateSeq(collection: string): string;
  indexUpdatesApplied(collection: string): string;
  indexMeta(collection: string, version: number): string;
  indexChunk(collection: string, version: number, chunk: number): string;
  indexDocChunk(collection: string, version: number, chunk: number): string;
  readonly indexes: string;
  readonly indexEventsChannel: string;
  schedule(name: string): string;
  readonly schedules: string;
  alias(name: string): string;
  /** Live jobs of every tenant (shared, like the queues); members are liveMember(tenant, jobId). */
  readonly liveJobs: string;
  readonly reconcileLock: string;
  /** The tenant's history index (sorted set of job ids by createdAt). */
  readonly history: string;
  /** The history index of all tenants (members liveMember(tenant, jobId)). */
  readonly historyAll: string;
  /** The tenant's activity counters of one minute (minutes since the epoch). */
  activity(minute: number): string;
  /** The activity counters of one minute, summed over all tenants. */
  activityAll(minute: number): string;
  /** BullMQ's hash for a job: exists while BullMQ holds the job (we keep no finished jobs). */
  bullJob(queue: QueueName, jobId: string): string;
  /** One of BullMQ's own keys of a queue (`wait`, `prioritized`, `delayed`, `active`). */
  bullKey(queue: QueueName, suffix: string): string;
  /** Fair dispatch's clocks for one queue (shared by all tenants). */
  fairClock(queue: QueueName): string;
  /** This tenant's queued job ids (both queues). */
  readonly fairQueued: string;
  /** This tenant's running job ids, scored by when their lease ends (epoch ms). */
  readonly fairActive: string;
  /** This tenant's webhooks: a hash of name -> definition JSON. */
  readonly webhooks: string;
  /** One webhook's delivery log (sorted set of delivery ids by creation time). */
  webhookLog(name: string): string;
  /** One delivery's record (hash). */
  webhookDelivery(id: string): string;
  /** Events waiting to become deliveries (a stream shared by all tenants). */
  readonly webhookOutbox: string;
  /** Deliveries waiting for an attempt, all tenants, scored by when (epoch ms). */
  readonly webhookDue: string;
}

/** A live-jobs member: which tenant's record (empty for none) and which job. */
export function liveMember(tenant: string | undefined, jobId: string): string {
  return `${tenant ?? ''}/${jobId}`;
}

export function parseLiveMember(member: string): { tenant: string | undefined; jobId: string } | null {
  const slash = member.indexOf('/');
  if (slash < 0) return null;
  const tenant = member.slice(0, slash);
  const jobId = member.slice(slash + 1);
  if (!JOB_ID_PATTERN.test(jobId) || (tenant !== '' && !TENANT_PATTERN.test(tenant))) return null;
  return { tenant: tenant === '' ? undefined : tenant, jobId };
}

/**
 * The keys of one tenant: a tenant's jobs, data, results and indexes live under
 * `<prefix>:t:<tenant>:…`, so no key of one tenant can name another's. BullMQ's queues and the
 * control channel are shared (`<prefix>:…`). Without a tenant, everything is `<prefix>:…`.
 */
export function keyScheme(prefix: string, tenant?: string): KeyScheme {
  let byTenant = schemes.get(prefix);
  if (byTenant === undefined) {
    if (schemes.size >= MAX_SCHEMES) schemes.clear();
    byTenant = new Map();
    schemes.set(prefix, byTenant);
  }
  let keys = byTenant.get(tenant);
  if (keys === undefined) {
    if (byTenant.size >= MAX_SCHEMES) byTenant.clear();
    keys = makeKeyScheme(prefix, tenant);
    byTenant.set(tenant, keys);
  }
  return keys;
}

// A scheme is frozen and depends on its prefix and tenant alone, so each is made once: a worker
// asks for one per job, and making its ~40 functions showed in a worker profile (~20 µs a job).
// Bounded, as tenants come from job payloads: past the bound the memo starts over.
const MAX_SCHEMES = 4096;
const schemes = new Map<string, Map<string | undefined, KeyScheme>>();

function makeKeyScheme(prefix: string, tenant: string | undefined): KeyScheme {
  const p = tenant === undefined ? prefix : `${prefix}:t:${tenant}`;
  return Object.freeze({
    prefix,
    tenant,
    status: (jobId: string) => `${p}:job:${jobId}`,
    inlineData: (jobId: string) => `${p}:data:${jobId}`,
    result: (resultKey: string) => `${p}:result:${resultKey}`,
    eventsChannel: `${p}:events`,
    controlChannel: `${prefix}:control`,
    cancelFlag: (jobId: string) => `${p}:cancel:${jobId}`,
    indexSeq: (c: string) => `${p}:index:${c}:seq`,
    indexCurrent: (c: string) => `${p}:index:${c}:current`,
    indexDeleted: (c: string) => `${p}:index:${c}:deleted`,
    indexBuilding: (c: string) => `${p}:index:${c}:building`,
    indexUpdates: (c: string) => `${p}:index:${c}:updates`,
    indexUpdateSeq: (c: string) => `${p}:index:${c}:update-seq`,
    indexUpdatesApplied: (c: string) => `${p}:index:${c}:updates-applied`,
    indexMeta: (c: string, v: number) => `${p}:index:${c}:v${v}`,
    indexChunk: (c: string, v: number, i: number) => `${p}:index:${c}:v${v}:${i}`,
    indexDocChunk: (c: string, v: number, i: number) => `${p}:index:${c}:v${v}:d${i}`,
    indexes: `${p}:indexes`,
    indexEventsChannel: `${p}:index-events`,
    schedule: (name: string) => `${p}:schedule:${name}`,
    schedules: `${p}:schedules`,
    alias: (name: string) => `${p}:alias:${name}`,
    liveJobs: `${prefix}:live-jobs`,
    reconcileLock: `${prefix}:reconcile-lock`,
    history: `${p}:history`,
    historyAll: `${prefix}:history-all`,
    activity: (minute: number) => `${p}:activity:${minute}`,
    activityAll: (minute: number) => `${prefix}:activity-all:${minute}`,
    bullJob: (queue: QueueName, jobId: string) => `${prefix}:${queue}:${jobId}`,
    bullKey: (queue: QueueName, suffix: string) => `${prefix}:${queue}:${suffix}`,
    fairClock: (queue: QueueName) => `${prefix}:fair:${queue}:clock`,
    fairQueued: `${p}:fair:queued`,
    fairActive: `${p}:fair:active`,
    webhooks: `${p}:webhooks`,
    webhookLog: (name: string) => `${p}:webhook-log:${name}`,
    webhookDelivery: (id: string) => `${p}:webhook-delivery:${id}`,
    webhookOutbox: `${prefix}:webhook-outbox`,
    webhookDue: `${prefix}:webhook-due`,
  });
}

export function aggregationJobId(resultKey: string): string {
  return `agg-${resultKey}`;
}
