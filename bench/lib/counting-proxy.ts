// A TCP proxy in front of a Redis server for benchmarks: counts round trips (per connection, a
// client's bytes that follow an answer of the server, or open the connection, start one; bytes
// it sends before the next answer, a pipeline's however many chunks, belong to it) and can add
// a delay each way, to show what round trips cost on a real network instead of loopback. Order
// is kept: chunks of one connection are forwarded in the order they came, after the same delay.
import net from 'node:net';

export interface CountingProxy {
  readonly url: string;
  /** Round trips and bytes received from clients since the last reset. */
  counts(): { roundTrips: number; bytes: number };
  reset(): void;
  close(): Promise<void>;
}

export async function startCountingProxy(target: { port: number }, delayMs = 0): Promise<CountingProxy> {
  let roundTrips = 0;
  let bytes = 0;
  const sockets = new Set<net.Socket>();
  const forward = (to: net.Socket) => (chunk: Buffer) => {
    if (delayMs <= 0) to.write(chunk);
    else setTimeout(() => to.destroyed || to.write(chunk), delayMs);
  };
  const server = net.createServer((client) => {
    client.setNoDelay(true);
    const upstream = net.connect(target.port, '127.0.0.1');
    upstream.setNoDelay(true);
    sockets.add(client);
    sockets.add(upstream);
    const toUpstream = forward(upstream);
    const toClient = forward(client);
    let answered = true;
    client.on('data', (chunk: Buffer) => {
      if (answered) roundTrips++;
      answered = false;
      bytes += chunk.length;
      toUpstream(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      answered = true;
      toClient(chunk);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `redis://127.0.0.1:${port}`,
    counts: () => ({ roundTrips, bytes }),
    reset() {
      roundTrips = 0;
      bytes = 0;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
