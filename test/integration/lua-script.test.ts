// Status transitions run their scripts by SHA1 (shared/lua-script.ts): the script text crosses
// the wire only when the server does not know it, and a server that lost its scripts (restart,
// SCRIPT FLUSH) still runs every transition. Against a real redis-server.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { keyScheme } from '../../shared/keys.ts';
import { luaScript, runScript } from '../../shared/lua-script.ts';
import { StatusStore } from '../../shared/status.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';

const calls = async (redis: Redis, command: string): Promise<number> => {
  const text = await redis.info('commandstats');
  return Number(new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(text)?.[1] ?? 0);
};

describe('Lua scripts by SHA1', () => {
  let server: RedisServer;
  let redis: Redis;
  let admin: Redis;

  before(async () => {
    server = await startRedis();
    // As the worker's connections are: commands of one tick go out in one write.
    redis = new Redis(server.url, { enableAutoPipelining: true });
    admin = new Redis(server.url);
  });
  after(async () => {
    redis?.disconnect();
    admin?.disconnect();
    await server?.stop();
  });

  test('a status record goes through its whole life by EVALSHA, loading each script once, and again after SCRIPT FLUSH', async () => {
    const store = new StatusStore(redis, keyScheme(`lua-${process.pid}`), 60);
    const evalsBefore = await calls(admin, 'eval');
    const life = async (jobId: string) => {
      assert.equal(await store.enqueue(jobId, 'aggregate', { resultKey: 'r1' }), 'new');
      await store.active(jobId, 1);
      await store.progress(jobId, { phase: 'compute', percent: 50 });
      await store.completed(jobId, 'r1');
      const status = await store.get(jobId);
      assert.equal(status?.state, 'completed');
      assert.equal(status?.resultKey, 'r1');
    };
    await life('job-a');
    await life('job-b');
    // Three scripts (enqueue, start, write), each sent as text once: on the first call of each.
    assert.equal((await calls(admin, 'eval')) - evalsBefore, 3);
    assert.ok((await calls(admin, 'evalsha')) >= 8);

    await admin.script('FLUSH');
    await life('job-c');
    assert.equal((await calls(admin, 'eval')) - evalsBefore, 6, 'reloaded once per script after the flush');
  });

  test('an error the script raises is thrown as it is, not sent again as EVAL', async () => {
    const failing = luaScript(`return redis.error_reply('QUARRYTEST it failed')`);
    await redis.script('LOAD', failing.lua);
    const evalsBefore = await calls(admin, 'eval');
    await assert.rejects(runScript(redis, failing, 0), /QUARRYTEST it failed/);
    assert.equal((await calls(admin, 'eval')) - evalsBefore, 0);
  });
});
