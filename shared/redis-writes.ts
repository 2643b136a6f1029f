// One system call for the commands a connection sends in one turn of the event loop.
//
// ioredis writes each command to its socket as it is sent, and each socket write is one write(2).
// A worker running many jobs sends several commands to the same server in the same turn: replies
// that arrive together resume several jobs at once, and each sends its next command. Traced in a
// worker (strace, `bench scale`, concurrency 16), runs of 4-9 writes to one socket in a row were
// the rule, about 6 socket writes per 20-record job, and their system calls the largest self time
// of its main thread (`writeUtf8String`).
//
// `coalesceWrites` corks a connection's socket at the first write of a turn and uncorks it when
// the turn's callbacks and microtasks are done (process.nextTick runs after the microtask queue
// that sent them drains). The socket then hands the same bytes, in the same order, to one
// writev(2). Nothing about the commands changes: unlike ioredis' enableAutoPipelining, no command
// is regrouped into a pipeline and no reply is matched differently; a command leaves in the turn
// it was sent, as before.
import type { Cluster, Redis } from 'ioredis';

const COALESCED = Symbol('quarry.coalescedWrites');

interface Corkable {
  write(...args: unknown[]): boolean;
  cork(): void;
  uncork(): void;
  [COALESCED]?: true;
}

/** Makes every socket `redis` connects with (reconnects included) coalesce its writes per turn. */
export function coalesceWrites(redis: Redis): void {
  const wrap = () => {
    const stream = (redis as unknown as { stream?: Corkable }).stream;
    if (stream !== undefined) coalesceSocket(stream);
  };
  wrap();
  redis.on('connect', wrap);
}

/** coalesceWrites for each node connection of a Cluster client, as it makes them. */
export function coalesceClusterWrites(cluster: Cluster): void {
  cluster.on('+node', (node: Redis) => coalesceWrites(node));
}

function coalesceSocket(socket: Corkable): void {
  if (socket[COALESCED]) return;
  socket[COALESCED] = true;
  const write = socket.write;
  let corked = false;
  const flush = () => {
    corked = false;
    socket.uncork();
  };
  socket.write = function coalescedWrite(this: Corkable, ...args: unknown[]) {
    if (!corked) {
      corked = true;
      socket.cork();
      process.nextTick(flush);
    }
    return write.apply(this, args);
  };
}
