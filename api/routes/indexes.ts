// Index routes: enqueue a build or a document update, list a tenant's collections, read a collection's current version, search it, delete it. Searches
// are answered from the index loaded in this process (kept current by notices), with no Redis
// round trip on the hot path. Each tenant has its own collections and registry.
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { IndexHandle, QuarryClient } from '../../producers/client.ts';
import { QuarryError } from '../../shared/errors.ts';
import type { IndexRegistry } from '../../shared/index-registry.ts';
import { COLLECTION_PATTERN } from '../../shared/indexing.ts';
import { MAX_K, search } from '../../shared/search/index.ts';
import { searchRequestYielding } from '../../shared/search/request.ts';
import { READ } from '../authorization.ts';
import { parseWait, requireJson } from '../request.ts';

interface SearchQuery {
  q?: string;
  k?: string;
  mode?: string;
  prefix?: string;
}

function parseSearch(query: SearchQuery): { q: string; k: number; mode: 'any' | 'all'; prefix: boolean } {
  const q = query.q ?? '';
  if (q.trim() === '')
    throw new QuarryError('QUARRY_ERR_VALIDATION', 'q: the query is empty', { field: 'q' });
  if (q.length > 4096)
    throw new QuarryError('QUARRY_ERR_VALIDATION', 'q: at most 4096 characters', { field: 'q' });
  // Decimal digits only: Number() would also take `0x2`, ` 1e0 ` and `2.0`.
  const k = query.k === undefined ? 10 : /^[0-9]{1,4}$/.test(query.k) ? Number(query.k) : Number.NaN;
  if (!Number.isInteger(k) || k < 1 || k > MAX_K) {
    throw new QuarryError('QUARRY_ERR_VALIDATION', `k: a whole number from 1 to ${MAX_K}`, { field: 'k' });
  }
  const mode = query.mode ?? 'any';
  if (mode !== 'any' && mode !== 'all') {
    throw new QuarryError('QUARRY_ERR_VALIDATION', 'mode: "any" or "all"', { field: 'mode' });
  }
  const prefix = query.prefix ?? 'false';
  if (prefix !== 'true' && prefix !== 'false') {
    throw new QuarryError('QUARRY_ERR_VALIDATION', 'prefix: "true" or "false"', { field: 'prefix' });
  }
  return { q, k, mode, prefix: prefix === 'true' };
}

const notFound = (collection: string) =>
  new QuarryError('QUARRY_ERR_INDEX_NOT_FOUND', `no index "${collection}"`);

export function indexRoutes(
  app: FastifyInstance,
  deps: { client: QuarryClient; registry: IndexRegistry },
): void {
  // The API's own registry serves the default tenant; each tenant view keeps its own.
  const registryOf = (client: QuarryClient): IndexRegistry | Promise<IndexRegistry> =>
    client === deps.client ? deps.registry : (client.loadedRegistry() ?? client.indexRegistry());

  // A build job's answer: 200 with the version once live within `wait`, else 202 with the job.
  async function answer(client: QuarryClient, handle: IndexHandle, wait: number, reply: FastifyReply) {
    const links = { status: `/v1/jobs/${handle.jobId}`, index: `/v1/indexes/${handle.collection}` };
    if (wait > 0) {
      try {
        const info = await handle.wait({ timeoutMs: wait });
        // This process serves the new version before answering, so a search right after sees it.
        await (await registryOf(client)).refresh(handle.collection, info.version);
        return reply.send({ jobId: handle.jobId, status: 'completed', links, index: info });
      } catch (error) {
        if (!(error instanceof QuarryError && error.code === 'QUARRY_ERR_WAIT_TIMEOUT')) throw error;
      }
    }
    // The build is queued whatever this read says: a 503 here would invite a second build.
    const status = await client.status(handle.jobId).catch(() => null);
    return reply.code(202).send({ jobId: handle.jobId, status: status?.state ?? 'queued', links });
  }

  app.post<{ Params: { collection: string } }>(
    '/v1/indexes/:collection',
    { config: { scope: 'enqueue', query: ['wait'] } },
    async (request, reply) => {
      const client = request.quarry;
      const wait = parseWait(request.query);
      const handle = await client.index(request.params.collection, requireJson(request.body).parse());
      return answer(client, handle, wait, reply);
    },
  );

  // Document updates: a build of the next version from the live one plus the changes.
  for (const [method, kind] of [
    ['POST', 'upsert'],
    ['DELETE', 'delete'],
  ] as const) {
    app.route<{ Params: { collection: string } }>({
      method,
      url: '/v1/indexes/:collection/documents',
      config: { scope: 'enqueue', query: ['wait'] },
      handler: async (request, reply) => {
        const { collection } = request.params;
        if (!COLLECTION_PATTERN.test(collection)) throw notFound(collection);
        const client = request.quarry;
        const wait = parseWait(request.query);
        const handle = await client.updateDocuments(collection, kind, requireJson(request.body).parse());
        return answer(client, handle, wait, reply);
      },
    });
  }

  // The tenant's collections, each with its live version's metadata (as Redis holds it).
  app.get('/v1/indexes', READ, async (request) => ({ indexes: await request.quarry.listIndexes() }));

  // What this process serves, when it holds the collection: info and searches read one record, so
  // they never disagree (after the queue Redis lost its data, `stored: false` says so). Otherwise
  // the live version in Redis: the one a search here would load.
  app.get<{ Params: { collection: string } }>('/v1/indexes/:collection', READ, async (request) => {
    const { collection } = request.params;
    if (!COLLECTION_PATTERN.test(collection)) throw notFound(collection);
    const client = request.quarry;
    // Peek only: asking for info must not start a tenant's registry (a subscription) of its own.
    const loaded = (client === deps.client ? deps.registry : client.loadedRegistry())?.peek(collection);
    if (loaded !== undefined) return { ...loaded.info, stored: loaded.stored };
    const info = await client.indexInfo(collection);
    if (info === null) throw notFound(collection);
    return { ...info, stored: true };
  });

  app.delete<{ Params: { collection: string } }>(
    '/v1/indexes/:collection',
    { config: { scope: 'enqueue' } },
    async (request) => {
      const { collection } = request.params;
      if (!COLLECTION_PATTERN.test(collection)) throw notFound(collection);
      const client = request.quarry;
      const deleted = await client.deleteIndex(collection);
      // deleteIndex drops the client's own registry's copy; the app may have been given another.
      if (client === deps.client) await deps.registry.refresh(collection);
      return { ...deleted, deleted: true };
    },
  );

  app.get<{ Params: { collection: string }; Querystring: SearchQuery }>(
    '/v1/indexes/:collection/search',
    { config: { scope: 'read', query: ['q', 'k', 'mode', 'prefix'] } },
    async (request) => {
      const started = performance.now();
      const { collection } = request.params;
      const { q, k, mode, prefix } = parseSearch(request.query);
      const registry = await registryOf(request.quarry);
      const loaded =
        registry.peek(collection) ??
        (COLLECTION_PATTERN.test(collection) ? await registry.get(collection) : null);
      if (loaded === null) throw notFound(collection);
      const result = search(loaded.index, q, { k, mode, prefix });
      return {
        hits: result.hits.map((h) => ({ id: h.id, score: h.score, fields: h.fields })),
        total: result.total,
        version: loaded.version,
        tookMs: Math.round((performance.now() - started) * 1000) / 1000,
      };
    },
  );

  // The full query (shared/search/request.ts): phrases, negation, typos, filter, facets, sort,
  // pages, highlights and snippets, checked against the loaded index's settings.
  app.post<{ Params: { collection: string } }>(
    '/v1/indexes/:collection/search',
    { config: { scope: 'read' } },
    async (request) => {
      const started = performance.now();
      const { collection } = request.params;
      const body = requireJson(request.body).parse();
      const registry = await registryOf(request.quarry);
      const loaded =
        registry.peek(collection) ??
        (COLLECTION_PATTERN.test(collection) ? await registry.get(collection) : null);
      if (loaded === null) throw notFound(collection);
      const result = await searchRequestYielding(loaded.index, body);
      return {
        hits: result.hits.map(({ ordinal: _, typos, ...hit }) => (typos > 0 ? { ...hit, typos } : hit)),
        total: result.total,
        ...(result.facets === undefined ? {} : { facets: result.facets }),
        version: loaded.version,
        tookMs: Math.round((performance.now() - started) * 1000) / 1000,
      };
    },
  );
}
