// Simulated hosts on one machine for `npm run hosts-test` (scripts/hosts-test.ts): one network
// namespace per host, joined by point-to-point veth pairs, never a bridge, so each host has
// routes only to what it must reach:
//
//   operator (this process, the root namespace) ── api ── redis ── worker-1
//                                                           └──── worker-2 (… worker-N)
//
// The Redis host holds the service address (SERVICE, on its loopback) that the API and worker
// hosts route to over their own link; no namespace forwards (net.ipv4.ip_forward=0), so a worker
// cannot reach the API or another worker, and the operator reaches the API alone. When `nft`
// is installed (Debian's nftables) each host also gets a firewall that lets through only the
// ports it must use (inbound and outbound); without it the routes alone isolate the hosts.
// Each process runs under `ip netns exec` and `unshare --uts` with a hostname of its own, so
// BullMQ's `processedBy` (hostname:pid) names the host.
//
// Namespaces are named `qh-<pid>-<host>` after this process; `sweepStale` removes those of a run
// whose process is gone (one killed by SIGKILL cannot clean up after itself).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';

export type Role = 'redis' | 'api' | 'worker';

export interface Host {
  /** Short name: `redis`, `api`, `worker-1`, … (also the process hostname, prefixed `quarry-`). */
  readonly name: string;
  readonly role: Role;
  readonly ns: string;
  /** This host's address on its link toward the Redis host (the API's: also toward the operator). */
  readonly address: string;
  /** The interface of that link, inside the namespace (what a link cut sets down). */
  readonly device: string;
}

export interface NetworkOptions {
  readonly workerHosts: number;
  /** TCP ports on the Redis host the others may reach (queue, cache, object store). */
  readonly redisHostPorts: readonly number[];
  readonly apiPort: number;
  /** Default: `nft` when installed, else `routes`. */
  readonly isolation?: 'nft' | 'routes';
}

export interface Network {
  readonly hosts: readonly Host[];
  /** The Redis host's service address (on its loopback, routed to by the API and worker hosts). */
  readonly service: string;
  /** The API host's address on the operator's link, and the operator's own. */
  readonly apiAddress: string;
  readonly operatorAddress: string;
  /** `nft`: per-host firewalls on top of the routes; `routes`: the routes alone. */
  readonly isolation: 'nft' | 'routes';
  host(name: string): Host;
  /** Starts `argv` inside the host (its own hostname) with exactly `env` (default: this process's). */
  spawn(host: Host, argv: readonly string[], env?: NodeJS.ProcessEnv): ChildProcess;
  /** Runs a command in the host and waits; rejects unless it exits 0. */
  run(host: Host | null, argv: readonly string[], input?: string): Promise<string>;
  /** Cuts the host off the network: a silent drop of every packet (nft), else its link set down. */
  cut(host: Host): void;
  /** Kills every process this network started, then deletes the namespaces. Synchronous, idempotent. */
  destroy(): void;
}

const PREFIX = 'qh-';

function sh(argv: readonly string[], input?: string): { ok: boolean; out: string } {
  const r = spawnSync(argv[0]!, argv.slice(1), { input, encoding: 'utf8' });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

function must(argv: readonly string[], input?: string): void {
  const r = sh(argv, input);
  if (!r.ok) throw new Error(`${argv.join(' ')}: ${r.out}`);
}

/** Why this machine cannot build the hosts (not root, no `ip`, namespaces refused), or null. */
export function netnsUnavailable(): string | null {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'network namespaces need root (ip netns add)';
  if (!sh(['ip', '-V']).ok) return '`ip` (iproute2) is not installed';
  const probe = `${PREFIX}probe-${process.pid}`;
  const added = sh(['ip', 'netns', 'add', probe]);
  sh(['ip', 'netns', 'del', probe]);
  if (!added.ok) return `ip netns add failed: ${added.out}`;
  if (!sh(['unshare', '--version']).ok) return '`unshare` (util-linux) is not installed';
  return null;
}

export function nftAvailable(): boolean {
  return sh(['nft', '--version']).ok;
}

function killNamespace(ns: string): void {
  const pids = sh(['ip', 'netns', 'pids', ns]).out.split(/\s+/).filter(Boolean);
  for (const pid of pids) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  sh(['ip', 'netns', 'del', ns]);
}

/** Deletes the namespaces of earlier runs whose process no longer exists; returns their names. */
export function sweepStale(): string[] {
  const swept: string[] = [];
  for (const line of sh(['ip', 'netns', 'list']).out.split('\n')) {
    const ns = line.split(' ')[0] ?? '';
    const match = /^qh-(\d+)-/.exec(ns);
    if (match === null) continue;
    try {
      process.kill(Number(match[1]), 0);
    } catch {
      killNamespace(ns);
      sh(['ip', 'route', 'del', 'blackhole', `${subnet(Number(match[1]))}.0.0/16`]);
      swept.push(ns);
    }
  }
  return swept;
}

/** The first two octets of a run's addresses: its own per run, as the operator's link lives in the
 * root namespace, where two runs at once must not both claim one subnet. */
function subnet(pid: number): string {
  return `10.${100 + (pid % 150)}`;
}

function ruleset(lines: readonly string[]): string {
  return `table inet quarry {\n${lines.join('\n')}\n}\n`;
}

function chain(name: 'input' | 'output', rules: readonly string[]): string {
  const lo = name === 'input' ? 'iif lo accept' : 'oif lo accept';
  return [
    `  chain ${name} {`,
    `    type filter hook ${name} priority 0; policy drop;`,
    `    ${lo}`,
    '    ct state established,related accept',
    ...rules.map((r) => `    ${r}`),
    '  }',
  ].join('\n');
}

/** Builds the hosts: namespaces, links, addresses, routes and (with nft) firewalls. */
export function buildNetwork(options: NetworkOptions): Network {
  const tag = process.pid.toString(36);
  const net = subnet(process.pid);
  const service = `${net}.0.1`;
  const apiAddress = `${net}.200.2`;
  const operatorAddress = `${net}.200.1`;
  const operatorDevice = `q${tag}o0`;
  const isolation = options.isolation ?? (nftAvailable() ? 'nft' : 'routes');
  if (isolation === 'nft' && !nftAvailable()) throw new Error('nft is not installed (Debian: nftables)');
  const hosts: Host[] = [];
  const children = new Set<ChildProcess>();
  let destroyed = false;

  const ns = (name: string) => `${PREFIX}${process.pid}-${name}`;
  const inNs = (host: Host, argv: readonly string[]) => ['ip', 'netns', 'exec', host.ns, ...argv];

  const destroy = () => {
    if (destroyed) return;
    destroyed = true;
    for (const child of children)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const host of hosts) killNamespace(host.ns);
    sh(['ip', 'link', 'del', operatorDevice]);
    sh(['ip', 'route', 'del', 'blackhole', `${net}.0.0/16`]);
  };

  try {
    const redis: Host = { name: 'redis', role: 'redis', ns: ns('redis'), address: service, device: 'lo' };
    const plan: { name: string; role: Role; link: number }[] = [
      { name: 'api', role: 'api', link: 1 },
      ...Array.from({ length: options.workerHosts }, (_, i) => ({
        name: `worker-${i + 1}`,
        role: 'worker' as const,
        link: i + 2,
      })),
    ];
    hosts.push(redis);
    must(['ip', 'netns', 'add', redis.ns]);
    for (const p of plan) {
      const host: Host = {
        name: p.name,
        role: p.role,
        ns: ns(p.name),
        address: `${net}.${p.link}.2`,
        device: `q${tag}h${p.link}`,
      };
      hosts.push(host);
      must(['ip', 'netns', 'add', host.ns]);
      // One veth pair per link: the host's end and the Redis host's end.
      const hub = `q${tag}r${p.link}`;
      must([
        'ip',
        'link',
        'add',
        host.device,
        'netns',
        host.ns,
        'type',
        'veth',
        'peer',
        'name',
        hub,
        'netns',
        redis.ns,
      ]);
      must(inNs(host, ['ip', 'addr', 'add', `${host.address}/24`, 'dev', host.device]));
      must(inNs(host, ['ip', 'link', 'set', host.device, 'up']));
      must(inNs(redis, ['ip', 'addr', 'add', `${net}.${p.link}.1/24`, 'dev', hub]));
      must(inNs(redis, ['ip', 'link', 'set', hub, 'up']));
      // The only route off the host's own link: the Redis host's service address.
      must(inNs(host, ['ip', 'route', 'add', `${service}/32`, 'via', `${net}.${p.link}.1`]));
    }
    const api = hosts.find((h) => h.role === 'api')!;
    // The operator's link: this process reaches the API host, and nothing else of the network.
    must(['ip', 'link', 'add', operatorDevice, 'type', 'veth', 'peer', 'name', 'q0', 'netns', api.ns]);
    must(['ip', 'addr', 'add', `${operatorAddress}/24`, 'dev', operatorDevice]);
    must(['ip', 'link', 'set', operatorDevice, 'up']);
    // The root namespace's default route may lead somewhere that accepts any connection (a
    // proxy): the rest of the simulated network is a blackhole from here, so the operator
    // reaches the API's link and nothing else of it.
    must(['ip', 'route', 'add', 'blackhole', `${net}.0.0/16`]);
    must(inNs(api, ['ip', 'addr', 'add', `${apiAddress}/24`, 'dev', 'q0']));
    must(inNs(api, ['ip', 'link', 'set', 'q0', 'up']));
    for (const host of hosts) {
      must(inNs(host, ['ip', 'link', 'set', 'lo', 'up']));
      must(inNs(host, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=0']));
    }
    must(inNs(redis, ['ip', 'addr', 'add', `${service}/32`, 'dev', 'lo']));

    if (isolation === 'nft') {
      const ports = `{ ${options.redisHostPorts.join(', ')} }`;
      const clients = hosts.filter((h) => h.role !== 'redis').map((h) => h.address);
      for (const host of hosts) {
        const rules =
          host.role === 'redis'
            ? [
                chain('input', [`ip saddr { ${clients.join(', ')} } tcp dport ${ports} accept`]),
                chain('output', []),
              ]
            : host.role === 'api'
              ? [
                  chain('input', [`ip saddr ${operatorAddress} tcp dport ${options.apiPort} accept`]),
                  chain('output', [`ip daddr ${service} tcp dport ${ports} accept`]),
                ]
              : [chain('input', []), chain('output', [`ip daddr ${service} tcp dport ${ports} accept`])];
        must(inNs(host, ['nft', '-f', '-']), ruleset(rules));
      }
    }
  } catch (error) {
    destroy();
    throw error;
  }

  return {
    hosts,
    service,
    apiAddress,
    operatorAddress,
    isolation,
    host(name) {
      const host = hosts.find((h) => h.name === name);
      if (host === undefined) throw new Error(`no host ${name}`);
      return host;
    },
    spawn(host, argv, env = process.env) {
      const child = spawn(
        'ip',
        inNs(host, [
          'unshare',
          '--uts',
          'sh',
          '-c',
          'hostname "$0" && exec "$@"',
          `quarry-${host.name}`,
          ...argv,
        ]).slice(1),
        { env, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      children.add(child);
      child.once('exit', () => children.delete(child));
      return child;
    },
    run(host, argv, input) {
      const full = host === null ? [...argv] : inNs(host, argv);
      return new Promise((resolve, reject) => {
        const child = spawn(full[0]!, full.slice(1), {
          stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
        });
        children.add(child);
        let out = '';
        let err = '';
        // A command that exits before reading its input (EPIPE) answers through its exit code.
        child.stdin?.on('error', () => undefined);
        child.stdin?.end(input);
        child.stdout?.on('data', (d: Buffer) => {
          out += d.toString();
        });
        child.stderr?.on('data', (d: Buffer) => {
          err += d.toString();
        });
        child.once('error', reject);
        child.once('exit', (code) => {
          children.delete(child);
          if (code === 0) resolve(out);
          else reject(new Error(`${full.join(' ')} exited ${code}: ${err.trim() || out.trim()}`));
        });
      });
    },
    cut(host) {
      if (isolation === 'nft') {
        // Priority -10: before the host's own rules; a drop there is final whatever they accept.
        const cut = ['input', 'output']
          .map(
            (hook) => `  chain cut_${hook} {\n    type filter hook ${hook} priority -10; policy drop;\n  }`,
          )
          .join('\n');
        must(inNs(host, ['nft', '-f', '-']), `table inet quarry_cut {\n${cut}\n}\n`);
      } else {
        must(inNs(host, ['ip', 'link', 'set', host.device, 'down']));
      }
    },
    destroy,
  };
}
