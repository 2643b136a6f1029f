// The messages between the Polars engine (main thread) and its worker threads, and how errors
// cross that boundary: structured clone drops classes, so a QuarryError travels as its code,
// message and field and is rebuilt on the other side.
import type { ColumnInfo } from '../../shared/datasets.ts';
import { type ErrorCode, isErrorCode, isQuarryError, QuarryError } from '../../shared/errors.ts';
import type { EngineInput, EngineOutput, EngineSource } from './engine.ts';

export type FileSource = Extract<EngineSource, { kind: 'file' }>;

export type ThreadTask =
  | { readonly kind: 'run'; readonly input: EngineInput }
  | { readonly kind: 'columns'; readonly source: FileSource }
  /** Answers once the thread has loaded Polars: for warming a pool up. */
  | { readonly kind: 'ping' };

export interface TaskResults {
  run: EngineOutput;
  columns: ColumnInfo[];
  ping: null;
}

export interface ThreadRequest {
  readonly id: number;
  readonly task: ThreadTask;
}

export interface WireError {
  readonly code: ErrorCode;
  readonly message: string;
  readonly field?: string;
  /** The original error's message and stack when it was not a QuarryError (for the log). */
  readonly cause?: { readonly message: string; readonly stack?: string };
}

export type ThreadResponse =
  | { readonly id: number; readonly ok: true; readonly value: unknown; readonly durationMs: number }
  | { readonly id: number; readonly ok: false; readonly error: WireError };

export function toWireError(error: unknown): WireError {
  if (isQuarryError(error)) {
    const cause = error.cause instanceof Error ? plainCause(error.cause) : undefined;
    return {
      code: error.code,
      message: error.message,
      ...(error.field === undefined ? {} : { field: error.field }),
      ...(cause === undefined ? {} : { cause }),
    };
  }
  const cause = error instanceof Error ? plainCause(error) : { message: String(error) };
  return { code: 'QUARRY_ERR_ENGINE', message: `Polars failed: ${firstLine(cause.message)}`, cause };
}

export function fromWireError(wire: WireError): QuarryError {
  const code = isErrorCode(wire.code) ? wire.code : 'QUARRY_ERR_ENGINE';
  return new QuarryError(code, wire.message, {
    ...(wire.field === undefined ? {} : { field: wire.field }),
    ...(wire.cause === undefined ? {} : { cause: Object.assign(new Error(wire.cause.message), wire.cause) }),
  });
}

export function firstLine(message: string): string {
  return message.split('\n', 1)[0]!;
}

function plainCause(error: Error): { message: string; stack?: string } {
  return error.stack === undefined
    ? { message: error.message }
    : { message: error.message, stack: error.stack };
}
