// GET /v1/tenants/:tenant/usage: a tenant's queued and running jobs and its fair-dispatch limits
// (docs/FAIRNESS.md). An admin key may read any tenant of the key list; any other key only its
// own tenant: another tenant is the same 404 as an unknown one. GET /v1/tenants: the same for
// every tenant the key may read (admin: all of the key list, in its order; others: their own).
import type { FastifyInstance } from 'fastify';
import type { QuarryClient } from '../../producers/client.ts';
import type { QuarryConfig } from '../../shared/config.ts';
import { QuarryError } from '../../shared/errors.ts';
import { tenantPolicies } from '../../shared/fairness.ts';
import { READ } from '../authorization.ts';

export function tenantRoutes(
  app: FastifyInstance,
  deps: { config: QuarryConfig; client: QuarryClient },
): void {
  app.get<{ Params: { tenant: string } }>('/v1/tenants/:tenant/usage', READ, async (request) => {
    const { tenant } = request.params;
    const policy = tenantPolicies(deps.config).find((p) => p.tenant === tenant);
    if (policy === undefined || (!request.quarryAdmin && request.quarry.tenant !== tenant)) {
      throw new QuarryError('QUARRY_ERR_TENANT_NOT_FOUND', `no tenant "${tenant}"`);
    }
    return { ...policy, ...(await deps.client.forTenant(tenant).usage()) };
  });
  app.get('/v1/tenants', READ, async (request) => {
    const readable = tenantPolicies(deps.config).filter(
      (p) => request.quarryAdmin || request.quarry.tenant === p.tenant,
    );
    const tenants = await Promise.all(
      readable.map(async (p) => ({ ...p, ...(await deps.client.forTenant(p.tenant).usage()) })),
    );
    return { tenants };
  });
}
