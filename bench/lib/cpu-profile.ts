// Reads V8 `.cpuprofile` files (written by `node --cpu-prof`) and sums self time per function:
// the samples whose top frame is that function, weighted by the time each sample stands for.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  /** `function (file:line)`, the file shortened to what follows node_modules/ or the checkout. */
  readonly frame: string;
  readonly selfMs: number;
}

export interface ProfileSummary {
  readonly files: string[];
  /** Sampled time with the thread busy (every frame but `(idle)`), ms. */
  readonly busyMs: number;
  /** Largest self time first. */
  readonly top: SelfTime[];
}

const shortUrl = (url: string) => {
  const file = url.replace(/^file:\/\//, '');
  const nm = file.lastIndexOf('node_modules/');
  if (nm !== -1) return file.slice(nm + 'node_modules/'.length);
  const cwd = `${process.cwd()}/`;
  return file.startsWith(cwd) ? file.slice(cwd.length) : file;
};

/**
 * Sums the self time of the main-thread `.cpuprofile`s in `dir` (several processes of one
 * setting). Node names them CPU.<date>.<time>.<pid>.<thread>.<seq>: thread 0 is the main one;
 * the others (Polars and index-build threads) sit idle in these runs and are left out.
 */
export function summarizeProfiles(dir: string, limit = 20): ProfileSummary {
  const files = readdirSync(dir)
    .filter((f) => /\.\d+\.0\.\d+\.cpuprofile$/.test(f))
    .map((f) => path.join(dir, f));
  const self = new Map<string, number>();
  let busyUs = 0;
  for (const file of files) {
    const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
    const frames = new Map<number, string>();
    for (const node of profile.nodes) {
      const { functionName, url, lineNumber } = node.callFrame;
      const where = url === '' ? '' : ` (${shortUrl(url)}:${lineNumber + 1})`;
      frames.set(node.id, `${functionName || '(anonymous)'}${where}`);
    }
    for (let i = 0; i < profile.samples.length; i++) {
      const frame = frames.get(profile.samples[i]!) ?? '?';
      const us = profile.timeDeltas[i] ?? 0;
      self.set(frame, (self.get(frame) ?? 0) + us);
      if (frame !== '(idle)') busyUs += us;
    }
  }
  const top = [...self]
    .filter(([frame]) => frame !== '(idle)')
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([frame, us]) => ({ frame, selfMs: Math.round(us / 100) / 10 }));
  return { files, busyMs: Math.round(busyUs / 1000), top };
}
