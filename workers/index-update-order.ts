// Document updates in acknowledgement order (the index processor's `update`): the updates of a
// collection wait in its pending set (IndexStore), and the first of them is the only one that
// may go live next, applied by whichever attempt gets to it, on its own job's behalf or on an
// earlier one's.
import { setTimeout } from 'node:timers/promises';
import type { Job } from 'bullmq';
import { isErrorCode, QuarryError } from '../shared/errors.ts';
import {
  checkChanges,
  type DocumentChanges,
  type IndexSettings,
  projectedFields,
  settingsOf,
} from '../shared/index-documents.ts';
import type { IndexStore, PublishOutcome } from '../shared/index-store.ts';
import { parseChanges } from '../shared/index-updates.ts';
import type { IndexJobData } from '../shared/indexing.ts';
import type { Logger } from '../shared/logger.ts';
import type { Redis } from '../shared/redis.ts';
import { isFinalState } from '../shared/status.ts';
import type { UpdateInput } from './index-build-thread.ts';
import type { JobScope } from './job-scope.ts';

/** What one build did: its version, what publish answered, its document count and time. */
export interface Built {
  version: number;
  outcome: PublishOutcome;
  docCount: number;
  buildMs: number;
}

/** Builds one document update may make: its first, then one per build that went live meanwhile. */
export const UPDATE_TRIES = 10;

/** Builds `documents` as `version` on top of `base` and publishes it while `base` is current. */
export type BuildUpdate = (
  jobId: string,
  collection: string,
  scope: JobScope,
  store: IndexStore,
  version: number,
  documents: UpdateInput,
  settings: IndexSettings,
  signal: AbortSignal,
  base: number,
  applied: string,
) => Promise<Built>;

export interface UpdaterDeps {
  queueRedis: Redis;
  logger: Logger;
  /** The index processor's build and publish. */
  build: BuildUpdate;
}

/** The update step of an index job whose source is a document update. */
export function createUpdater(deps: UpdaterDeps) {
  /**
   * A document update, applied in acknowledgement order: the updates of a collection wait in its
   * pending set (IndexStore.registerUpdate, given by the producer before it answered), and the
   * first of them is the only one that may go live next. This job applies the first pending update
   * on the live version's documents, with that version's settings (its header), published only
   * while that version is still current and leaving the pending set in the same step; when it is
   * an earlier job's update, this job applies it on that job's behalf (and completes or fails that
   * job's record, which its own attempt then finds ended), and goes on until its own is applied.
   * So no update waits for a worker slot of another, and one acknowledged after another is never
   * overtaken by it (a delete after an add of the same id stays deleted). When another build went
   * live meanwhile, the same update again on that one (UPDATE_TRIES in all, then
   * QUARRY_ERR_INDEX_CONFLICT).
   */
  async function update(
    job: Job<IndexJobData>,
    jobId: string,
    scope: JobScope,
    store: IndexStore,
    signal: AbortSignal,
  ): Promise<Built> {
    const { collection } = job.data;
    let conflicts = 0;
    for (;;) {
      signal.throwIfAborted();
      if (!(await store.isPending(collection, jobId))) {
        // Applied by another job's attempt (or failed by it), or never given a place: a job
        // enqueued before updates were ordered, or whose producer died before answering.
        const applied = await appliedElsewhere(jobId, scope, store, collection);
        if (applied !== null) return applied;
        await store.registerUpdate(collection, jobId);
      }
      const first = await store.firstUpdate(collection);
      if (first === null) continue;
      const target = first.jobId;
      let changes: DocumentChanges;
      if (target === jobId) {
        changes = await changesOf(scope, jobId);
      } else {
        // An earlier update: skipped when it ended without being applied (cancelled, failed);
        // else applied here, for its job.
        const record = await scope.status.get(target);
        if (record === null || isFinalState(record.state)) {
          await store.dropUpdate(collection, target);
          continue;
        }
        const text = await deps.queueRedis.get(scope.keys.inlineData(target));
        if (text === null) {
          await endEarlier(scope, store, collection, target, {
            code: 'QUARRY_ERR_DATASET_MISSING',
            message: 'the changes of this update expired before it ran',
          });
          continue;
        }
        changes = parseChanges(text);
      }
      let outcome: Built | 'moved';
      try {
        outcome = await applyOnce(job, jobId, scope, store, signal, target, changes);
      } catch (error) {
        // The update's own changes are at fault (a document the build refuses): that job fails,
        // and it leaves the pending set so that the next one can go.
        if (!(error instanceof QuarryError) || error.code !== 'QUARRY_ERR_VALIDATION') throw error;
        if (target === jobId) {
          await store.dropUpdate(collection, jobId);
          throw error;
        }
        await endEarlier(scope, store, collection, target, { code: error.code, message: error.message });
        continue;
      }
      if (outcome === 'moved') {
        // Another attempt applied the same update first (updates of one collection go one at a
        // time): progress, not a conflict. Only a version that moved for another reason counts.
        if (!(await store.isPending(collection, target))) continue;
        conflicts++;
        if (conflicts >= UPDATE_TRIES) {
          throw new QuarryError(
            'QUARRY_ERR_INDEX_CONFLICT',
            `"${collection}" changed under this update ${UPDATE_TRIES} times; nothing was published`,
          );
        }
        deps.logger.info(
          { jobId, collection, attempt: conflicts },
          'index update rebuilds on the new current version',
        );
        // Jittered, so that updates that lost together do not race again in step.
        await setTimeout(Math.min(2000, 50 * 2 ** conflicts) * (0.5 + Math.random()), undefined, { signal });
        continue;
      }
      if (target === jobId) return outcome;
      await scope.status.completed(target, null, { version: outcome.version });
      deps.logger.info(
        { jobId, collection, applied: target, version: outcome.version },
        'index update applied an earlier update first',
      );
    }
  }

  /** The job's own changes, as its producer stored them. */
  async function changesOf(scope: JobScope, jobId: string): Promise<DocumentChanges> {
    const text = await deps.queueRedis.get(scope.keys.inlineData(jobId));
    if (text === null) {
      throw new QuarryError('QUARRY_ERR_DATASET_MISSING', 'the changes of this update expired before it ran');
    }
    return parseChanges(text);
  }

  /** Fails an earlier update that cannot be applied, for its job, and takes it off the pending set. */
  async function endEarlier(
    scope: JobScope,
    store: IndexStore,
    collection: string,
    target: string,
    error: { code: string; message: string },
  ): Promise<void> {
    await scope.status.failed(target, error, true);
    await store.dropUpdate(collection, target);
    deps.logger.info({ applied: target, collection, code: error.code }, 'an earlier index update failed');
  }

  /**
   * This job's update is not pending: the version that applied it, its failure (thrown), or
   * null when neither (it never had a place).
   */
  async function appliedElsewhere(
    jobId: string,
    scope: JobScope,
    store: IndexStore,
    collection: string,
  ): Promise<Built | null> {
    const status = await scope.status.get(jobId);
    // The applied set, or the record the applying attempt completed (once that set trimmed it).
    const version =
      (await store.appliedVersion(collection, jobId)) ??
      (status?.state === 'completed' ? (status.version ?? null) : null);
    if (version !== null) {
      const info = await store.info(collection, version);
      return { version, outcome: 'live', docCount: info?.documents ?? 0, buildMs: 0 };
    }
    if (status?.state === 'failed' || status?.state === 'cancelled') {
      throw new QuarryError(
        isErrorCode(status.error?.code) ? status.error.code : 'QUARRY_ERR_JOB_FAILED',
        status.error?.message ?? 'this update failed',
      );
    }
    return null;
  }

  /**
   * Applies `changes` (the update of job `target`) on the live version: what was published, or
   * 'moved' when another version went live first.
   */
  async function applyOnce(
    job: Job<IndexJobData>,
    jobId: string,
    scope: JobScope,
    store: IndexStore,
    signal: AbortSignal,
    target: string,
    changes: DocumentChanges,
  ): Promise<Built | 'moved'> {
    const { collection } = job.data;
    for (;;) {
      signal.throwIfAborted();
      const pointer = await store.pointer(collection);
      if (pointer.version === null) {
        throw new QuarryError('QUARRY_ERR_INDEX_NOT_FOUND', `no index "${collection}" to update`);
      }
      const base = pointer.version;
      // A full build that reserved its version after this base is the newer state: start from it
      // once it is live (or gone). The job's hard timeout bounds the wait.
      if (await store.buildingAbove(collection, base)) {
        await setTimeout(250, undefined, { signal });
        continue;
      }
      const [header, stored, index] = await Promise.all([
        store.header(collection, base),
        store.documents(collection, base),
        store.fetch(collection, base),
      ]);
      // Replaced and expired in between: read the pointer again.
      if (header === null || index === null) continue;
      if (stored === null) {
        throw new QuarryError(
          'QUARRY_ERR_INDEX_NO_DOCUMENTS',
          `version ${base} of "${collection}" keeps no documents (built before updates existed): rebuild it once`,
        );
      }
      const settings = settingsOf(header);
      checkChanges(changes, settings.idField);
      const version = await store.nextVersion(collection);
      // The build thread applies the changes: it copies the kept documents' postings from the base
      // index, analyzes only the changed ones, and splices the kept documents' text.
      const documents: UpdateInput = {
        kind: 'update',
        stored: stored.buffer.slice(stored.byteOffset, stored.byteOffset + stored.length) as ArrayBuffer,
        index: index.buffer.slice(index.byteOffset, index.byteOffset + index.length) as ArrayBuffer,
        changes,
        idField: settings.idField,
        fields: projectedFields(settings),
      };
      const built = await deps.build(
        jobId,
        collection,
        scope,
        store,
        version,
        documents,
        settings,
        signal,
        base,
        target,
      );
      return built.outcome === 'moved' ? 'moved' : built;
    }
  }

  return update;
}
