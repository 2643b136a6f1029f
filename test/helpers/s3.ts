// Starts a real S3-protocol server (s3rver, from npm) as a child process on a free port over a
// folder, for integration tests and benchmarks. The server checks SigV4 signatures against its
// fixed credentials (S3RVER / S3RVER), which `env` carries with the endpoint: hand it to a
// Quarry config (or a worker process's environment). stop() kills it (and process exit does).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { DeleteObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { freePort } from './redis.ts';

export interface S3Server {
  /** `http://host:port` */
  readonly endpoint: string;
  readonly port: number;
  /** Where the server keeps its buckets. */
  readonly folder: string;
  /** The AWS variables (plus QUARRY_S3_FORCE_PATH_STYLE) that point Quarry at this server. */
  readonly env: Record<string, string>;
  /** A client of this server, for tests to put and delete objects. */
  readonly client: S3Client;
  put(bucket: string, key: string, body: Uint8Array | string): Promise<{ etag: string }>;
  remove(bucket: string, key: string): Promise<void>;
  stop(options?: { keepFolder?: boolean }): Promise<void>;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

const BIN = createRequire(import.meta.url).resolve('s3rver/bin/s3rver.js');
/** The fixed credentials s3rver checks signatures against. */
const CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

/**
 * The command line that starts s3rver (run it with this Node); for callers that start it
 * elsewhere than this process's network, as `npm run hosts-test` does on its Redis host. Once up,
 * it prints `S3rver listening on <address>:<port>` (S3RVER_READY).
 */
export function s3rverArgv(options: {
  folder: string;
  address: string;
  port: number;
  buckets?: readonly string[];
}): string[] {
  const args = [BIN, '--directory', options.folder, '--address', options.address];
  args.push('--port', String(options.port), '--silent');
  for (const bucket of options.buckets ?? []) args.push('--configure-bucket', bucket);
  return args;
}
export const S3RVER_READY = 'S3rver listening on';

/** The AWS variables (plus QUARRY_S3_FORCE_PATH_STYLE) that point Quarry at an s3rver. */
export function s3rverEnv(endpoint: string): Record<string, string> {
  return {
    AWS_ENDPOINT_URL_S3: endpoint,
    AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
    AWS_REGION: 'us-east-1',
    QUARRY_S3_FORCE_PATH_STYLE: 'true',
  };
}

/**
 * Starts s3rver with `buckets` created. Give `folder` to serve (or keep) a folder of your own;
 * `address` to bind elsewhere than 127.0.0.1 (a network namespace's address, say).
 */
export async function startS3(
  options: { folder?: string; buckets?: readonly string[]; address?: string; port?: number } = {},
): Promise<S3Server> {
  const ownFolder = options.folder === undefined;
  const folder = options.folder ?? mkdtempSync(path.join(os.tmpdir(), 'quarry-s3-'));
  const address = options.address ?? '127.0.0.1';
  const port = options.port ?? (await freePort());
  const args = s3rverArgv({ folder, address, port, buckets: options.buckets });
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  running.add(child);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const endpoint = `http://${address}:${port}`;
  const env = s3rverEnv(endpoint);
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { ...CREDENTIALS },
  });
  const stop = async (stopOptions: { keepFolder?: boolean } = {}) => {
    client.destroy();
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }
    running.delete(child);
    if (ownFolder && !stopOptions.keepFolder) rmSync(folder, { recursive: true, force: true });
  };
  // Ready when it answers HTTP (any status: an unsigned request is refused, but answered).
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`s3rver exited with ${child.exitCode}: ${stderr}`);
    }
    const answered = await fetch(`${endpoint}/`, { signal: AbortSignal.timeout(1000) }).then(
      () => true,
      () => false,
    );
    if (answered) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`s3rver did not answer on ${endpoint}: ${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    endpoint,
    port,
    folder,
    env,
    client,
    async put(bucket, key, body) {
      const out = await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
      return { etag: out.ETag ?? '' };
    },
    async remove(bucket, key) {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    },
    stop,
  };
}
