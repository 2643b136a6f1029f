// Stopping running jobs: each job gets one AbortSignal that fires on cancellation (a `cancel`
// message on the control channel makes BullMQ abort the job's signal in whichever worker
// process holds it) or at its type's hard timeout. The reason is the QuarryError the job then
// fails with; engines interrupt their work when it fires.
import type { Worker } from 'bullmq';
import { QuarryError } from '../shared/errors.ts';
import type { KeyScheme } from '../shared/keys.ts';
import type { Logger } from '../shared/logger.ts';
import { closeRedis, type Redis } from '../shared/redis.ts';

export interface JobSignal {
  readonly signal: AbortSignal;
  dispose(): void;
}

export function jobSignal(bullSignal: AbortSignal | undefined, timeoutMs: number, what: string): JobSignal {
  const controller = new AbortController();
  const onCancel = () =>
    controller.abort(new QuarryError('QUARRY_ERR_JOB_CANCELLED', `the ${what} job was cancelled`));
  if (bullSignal?.aborted) onCancel();
  bullSignal?.addEventListener('abort', onCancel, { once: true });
  const timer = setTimeout(
    () =>
      controller.abort(
        new QuarryError(
          'QUARRY_ERR_JOB_TIMEOUT',
          `the ${what} job ran longer than ${timeoutMs} ms and was stopped`,
        ),
      ),
    timeoutMs,
  );
  return {
    signal: controller.signal,
    dispose() {
      clearTimeout(timer);
      bullSignal?.removeEventListener('abort', onCancel);
    },
  };
}

/** The message on keys.controlChannel. */
export interface ControlMessage {
  readonly type: 'cancel';
  readonly jobId: string;
}

/** Listens on the control channel and aborts the named jobs this process is running. */
export class ControlListener {
  readonly #subscriber: Redis;
  readonly #channel: string;

  /** Takes ownership of `subscriber` (a dedicated connection). */
  constructor(subscriber: Redis, keys: KeyScheme, workers: readonly Worker[], logger: Logger) {
    this.#subscriber = subscriber;
    this.#channel = keys.controlChannel;
    subscriber.on('message', (channel: string, text: string) => {
      if (channel !== this.#channel) return;
      try {
        const message = JSON.parse(text) as ControlMessage;
        if (message.type !== 'cancel' || typeof message.jobId !== 'string') return;
        for (const worker of workers) {
          if (worker.cancelJob(message.jobId, 'cancelled')) {
            logger.info({ jobId: message.jobId }, 'cancelling a running job');
          }
        }
      } catch (err) {
        logger.warn({ err }, 'ignoring a malformed control message');
      }
    });
  }

  async start(): Promise<void> {
    await this.#subscriber.subscribe(this.#channel);
  }

  close(): Promise<void> {
    return closeRedis(this.#subscriber);
  }
}
