// The keys and status store of one job, under its tenant's prefix (shared/keys.ts): built per
// job from the tenant the job carries, so a worker serves every tenant from one queue.
import type { QuarryConfig } from '../shared/config.ts';
import { type KeyScheme, keyScheme, TENANT_PATTERN } from '../shared/keys.ts';
import type { Redis } from '../shared/redis.ts';
import { StatusStore } from '../shared/status.ts';

export interface JobScope {
  readonly keys: KeyScheme;
  readonly status: StatusStore;
}

/** The tenant a payload names, when it names a valid one (payloads are checked later). */
export function tenantOf(data: unknown): string | undefined {
  const tenant = (data as { tenant?: unknown } | null | undefined)?.tenant;
  return typeof tenant === 'string' && TENANT_PATTERN.test(tenant) ? tenant : undefined;
}

export function jobScope(config: QuarryConfig, queueRedis: Redis, tenant: string | undefined): JobScope {
  const keys = keyScheme(config.prefix, tenant);
  return { keys, status: new StatusStore(queueRedis, keys, config.statusTtlS, config) };
}
