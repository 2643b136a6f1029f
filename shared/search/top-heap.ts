// A bounded heap of the best k (score, ordinal) pairs, shared by the search paths.

/** The best k (score, ordinal) pairs seen; the root is the worst kept (lowest score, then highest ordinal). */
export class TopHeap {
  readonly scores: Float64Array;
  readonly docs: Int32Array;
  size = 0;
  k = 0;

  constructor(capacity: number) {
    this.scores = new Float64Array(capacity);
    this.docs = new Int32Array(capacity);
  }

  reset(k: number): void {
    this.size = 0;
    this.k = k;
  }

  offer(v: number, d: number): void {
    const hs = this.scores;
    const hd = this.docs;
    if (this.size < this.k) {
      let j = this.size++;
      while (j > 0) {
        const parent = (j - 1) >> 1;
        if (!worse(v, d, hs[parent]!, hd[parent]!)) break;
        hs[j] = hs[parent]!;
        hd[j] = hd[parent]!;
        j = parent;
      }
      hs[j] = v;
      hd[j] = d;
      return;
    }
    if (this.k === 0 || !worse(hs[0]!, hd[0]!, v, d)) return;
    const size = this.size;
    let j = 0;
    for (;;) {
      const l = 2 * j + 1;
      if (l >= size) break;
      const r = l + 1;
      const w = r < size && worse(hs[r]!, hd[r]!, hs[l]!, hd[l]!) ? r : l;
      if (!worse(hs[w]!, hd[w]!, v, d)) break;
      hs[j] = hs[w]!;
      hd[j] = hd[w]!;
      j = w;
    }
    hs[j] = v;
    hd[j] = d;
  }

  /** Score of the worst kept hit once k are kept, else -Infinity. */
  threshold(): number {
    return this.size === this.k && this.k > 0 ? this.scores[0]! : Number.NEGATIVE_INFINITY;
  }
}

/** True when hit (a, da) ranks below hit (b, db). */
export function worse(a: number, da: number, b: number, db: number): boolean {
  return a < b || (a === b && da > db);
}
