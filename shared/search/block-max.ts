// Top-k over common words by blocks of documents (block-max evaluation). The documents are cut
// into blocks of BLOCK consecutive ordinals; a common term gets, per block, its highest stored
// score and where its postings there start (kept with the index once built). A block's bound is
// the sum of its terms' maxima. The best-bounded blocks are read first, all their terms at once,
// which puts the k-th best score near its final value; then every other block whose bound can
// still beat it. The ranking is exact (the same hits and scores as reading every posting); the
// count of all matches is not known.
//
// Two stopwords over 100k documents read ~1-5% of their blocks this way, where term-at-a-time
// reads every posting and then every document. Several common words that the top documents each
// hold spread their scores evenly, most blocks stay in reach, and blocks lose to reading the lists:
// past MAX_SHARE of the blocks left after the first ones read, topByBlocks gives up (having cost a pass
// over the bounds and FIRST_READ blocks). Only terms holding at least N / COMMON_DIVISOR documents qualify:
// a table takes 8 bytes a block (N / 8 bytes), at most a quarter of the term's postings' bytes, and
// only the common words queried are ever built.
import type { SearchIndex } from './format.ts';
import { TopHeap } from './top-heap.ts';

const BLOCK_SHIFT = 6;
const BLOCK = 1 << BLOCK_SHIFT;
const COMMON_DIVISOR = 16;
const MAX_SHARE = 0.25;
const FIRST_READ = 32;
/** Below this many blocks every posting is read anyway (and the search keeps its exact count). */
const MIN_BLOCKS = 64;

interface TermBlocks {
  /** Highest stored score per block (0: no posting there). */
  max: Float32Array;
  /** starts[b]: the first posting of the term in block b or later; starts[blocks] = its end. */
  starts: Int32Array;
}

/** Per index: the terms' tables and the buffers a search reuses. */
interface Blocks {
  blocks: number;
  terms: Map<number, TermBlocks>;
  bound: Float64Array;
  read: Uint8Array;
  local: Float32Array;
  order: TopHeap;
}

const perIndex = new WeakMap<SearchIndex, Blocks>();

function blocksFor(index: SearchIndex): Blocks {
  let b = perIndex.get(index);
  if (b === undefined) {
    const blocks = Math.max(1, Math.ceil(index.header.docCount / BLOCK));
    b = {
      blocks,
      terms: new Map(),
      bound: new Float64Array(blocks),
      read: new Uint8Array(blocks),
      local: new Float32Array(BLOCK),
      order: new TopHeap(blocks),
    };
    perIndex.set(index, b);
  }
  return b;
}

/** True when the index is large enough and every term holds enough documents for blocks. */
export function allCommon(index: SearchIndex, terms: readonly number[]): boolean {
  const off = index.postingOffsets;
  const N = index.header.docCount;
  if (N < MIN_BLOCKS * BLOCK) return false;
  for (const t of terms) if ((off[t + 1]! - off[t]!) * COMMON_DIVISOR < N) return false;
  return true;
}

function termBlocks(index: SearchIndex, bl: Blocks, t: number): TermBlocks {
  const known = bl.terms.get(t);
  if (known !== undefined) return known;
  const { postingOffsets: off, postingDocs: docs, postingScores: scores } = index;
  const max = new Float32Array(bl.blocks);
  const starts = new Int32Array(bl.blocks + 1);
  let b = 0;
  const end = off[t + 1]!;
  starts[0] = off[t]!;
  for (let p = off[t]!; p < end; p++) {
    const db = docs[p]! >> BLOCK_SHIFT;
    while (b < db) starts[++b] = p;
    if (scores[p]! > max[db]!) max[db] = scores[p]!;
  }
  while (b < bl.blocks) starts[++b] = end;
  const tb = { max, starts };
  bl.terms.set(t, tb);
  return tb;
}

/**
 * Offers to `heap` (reset to k > 0) the best k documents by the sum of the terms' scores, summed in
 * float32 in the order given, as acc is; `slack` is the bound's relative allowance for that
 * rounding. Returns false, the heap reset, when too many blocks stay in reach (MAX_SHARE).
 */
export function topByBlocks(
  index: SearchIndex,
  terms: readonly number[],
  heap: TopHeap,
  slack: number,
): boolean {
  const bl = blocksFor(index);
  const { blocks, bound, read, local, order } = bl;
  const { postingDocs: docs, postingScores: scores } = index;
  const N = index.header.docCount;
  bound.fill(0);
  const starts: Int32Array[] = [];
  for (const t of terms) {
    const tb = termBlocks(index, bl, t);
    for (let b = 0; b < blocks; b++) bound[b]! += tb.max[b]!;
    starts.push(tb.starts);
  }
  // The best-bounded blocks first: each holds a document, so the heap is full after k of them;
  // FIRST_READ more bring the k-th best score nearer its final value before the blocks left in
  // reach are counted.
  order.reset(Math.min(Math.max(2 * heap.k, FIRST_READ), blocks));
  for (let b = 0; b < blocks; b++) {
    const ub = bound[b]!;
    if (ub > 0 && ub >= order.threshold()) order.offer(ub, b);
  }
  for (let i = 0; i < order.size; i++) {
    const b = order.docs[i]!;
    read[b] = 1;
    readBlock(docs, scores, starts, local, N, b, heap);
  }
  // Equal is read: a document scoring exactly the k-th best wins it back with a lower ordinal.
  const factor = 1 + slack;
  let left = 0;
  for (let b = 0; b < blocks; b++) left += Number(read[b] === 0 && bound[b]! * factor >= heap.threshold());
  if (left > blocks * MAX_SHARE) {
    for (let i = 0; i < order.size; i++) read[order.docs[i]!] = 0;
    heap.reset(heap.k);
    return false;
  }
  for (let b = 0; b < blocks; b++) {
    if (read[b] === 1) read[b] = 0;
    else if (bound[b]! > 0 && bound[b]! * factor >= heap.threshold())
      readBlock(docs, scores, starts, local, N, b, heap);
  }
  return true;
}

/** Sums block b's scores, each term's postings there in turn, and offers them. */
function readBlock(
  docs: Uint32Array,
  scores: Float32Array,
  starts: readonly Int32Array[],
  local: Float32Array,
  N: number,
  b: number,
  heap: TopHeap,
): void {
  const base = b << BLOCK_SHIFT;
  const width = Math.min(N, base + BLOCK) - base;
  for (let j = 0; j < starts.length; j++) {
    const st = starts[j]!;
    for (let p = st[b]!, end = st[b + 1]!; p < end; p++) local[docs[p]! - base]! += scores[p]!;
  }
  // Unreached documents are 0: one rarely taken branch, and every slot cleared without one (a
  // branch on "reached?" mispredicts half the time in a block of common words).
  let floor = Math.max(heap.threshold(), Number.MIN_VALUE);
  for (let i = 0; i < width; i++) {
    const v = local[i]!;
    if (v >= floor) {
      heap.offer(v, base + i);
      floor = Math.max(heap.threshold(), Number.MIN_VALUE);
    }
    local[i] = 0;
  }
}
