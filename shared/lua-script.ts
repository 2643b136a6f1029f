// Lua scripts run by their SHA1 (EVALSHA), so a transition sends its arguments, not the script's
// few kilobytes of text, on every call. A server that does not know the script (restarted,
// failed over, SCRIPT FLUSH) answers NOSCRIPT and the call is sent once more as EVAL, which
// loads it. The reply's first word is the error prefix Redis defines for this.
import { createHash } from 'node:crypto';
import type { Redis } from './redis.ts';

export interface LuaScript {
  readonly lua: string;
  readonly sha: string;
}

export function luaScript(lua: string): LuaScript {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}

const isNoScript = (error: unknown) =>
  error instanceof Error && error.name === 'ReplyError' && error.message.startsWith('NOSCRIPT');

/** Runs `script` with `numKeys` keys then the arguments; loads it on the server when needed. */
export async function runScript(
  redis: Redis,
  script: LuaScript,
  numKeys: number,
  ...args: (string | Buffer | number)[]
): Promise<unknown> {
  try {
    return await redis.evalsha(script.sha, numKeys, ...args);
  } catch (error) {
    if (!isNoScript(error)) throw error;
    return await redis.eval(script.lua, numKeys, ...args);
  }
}

// ioredis defines a Buffer-answering twin of every command at run time (evalshaBuffer,
// evalBuffer); its typings leave these two out. `call('evalsha')` would do, but fails inside an
// auto-pipelined batch in ioredis 6.
interface BufferScripts {
  evalshaBuffer(...args: (string | Buffer | number)[]): Promise<unknown>;
  evalBuffer(...args: (string | Buffer | number)[]): Promise<unknown>;
}

/** runScript answering bulk strings as Buffers (binary data, such as inline datasets). */
export async function runScriptBuffer(
  redis: Redis,
  script: LuaScript,
  numKeys: number,
  ...args: (string | Buffer | number)[]
): Promise<unknown> {
  try {
    return await (redis as unknown as BufferScripts).evalshaBuffer(script.sha, numKeys, ...args);
  } catch (error) {
    if (!isNoScript(error)) throw error;
    return await (redis as unknown as BufferScripts).evalBuffer(script.lua, numKeys, ...args);
  }
}
