// The term table of an index build: tokens -> dense term numbers, their code units pooled, and the
// order the file lists terms in (code point order). Also `grown`, how the build's typed arrays grow.

const INITIAL_TERMS = 1 << 14;
const UTF16 = new TextDecoder('utf-16le');
const UTF8 = new TextEncoder();

/** Maps tokens to dense term numbers (in order of first appearance) without creating a string per
 * ASCII token. Frequent terms appear early, so their records cluster at the start of each array. */
export class TermTable {
  count = 0;
  /** Code units of all terms back to back: term t is pool[starts[t], starts[t + 1]). */
  pool = new Uint16Array(1 << 18);
  starts = new Int32Array(INITIAL_TERMS + 1);
  hashes = new Int32Array(INITIAL_TERMS);
  docFreq = new Int32Array(INITIAL_TERMS);
  /** Per term: [last document it was seen in, its slot in that document's term list]. */
  seen = new Int32Array(INITIAL_TERMS * 2).fill(-1);
  hasNonAscii = false;
  hasSurrogates = false;
  /** Open addressing, linear probing: [hash, term + 1, pool start, length] per slot, so a probe reads
   * one cache line before comparing code units. */
  private slots = new Int32Array(INITIAL_TERMS * 8);
  private mask = INITIAL_TERMS * 2 - 1;

  idAscii(codes: Uint16Array, len: number, hash: number): number {
    const { pool, slots, mask } = this;
    const h = hash | 0;
    let slot = hash & mask;
    for (;;) {
      const o = slot << 2;
      const v = slots[o + 1]!;
      if (v === 0) break;
      if (slots[o] === h && slots[o + 3] === len) {
        const s = slots[o + 2]!;
        let j = 0;
        while (j < len && pool[s + j] === codes[j]) j++;
        if (j === len) return v - 1;
      }
      slot = (slot + 1) & mask;
    }
    const t = this.insert(slot, hash, len);
    this.pool.set(codes.subarray(0, len), this.starts[t]!);
    return t;
  }

  idString(token: string, hash: number): number {
    const found = this.find(token, hash);
    if (found >= 0) return found;
    let slot = hash & this.mask;
    while (this.slots[(slot << 2) + 1] !== 0) slot = (slot + 1) & this.mask;
    const t = this.insert(slot, hash, token.length);
    const at = this.starts[t]!;
    const p = this.pool;
    for (let j = 0; j < token.length; j++) {
      const c = token.charCodeAt(j);
      if (c >= 0x80) {
        this.hasNonAscii = true;
        if (c >= 0xd800 && c <= 0xdfff) this.hasSurrogates = true;
      }
      p[at + j] = c;
    }
    return t;
  }

  find(token: string, hash: number): number {
    const { pool, slots, mask } = this;
    const len = token.length;
    const h = hash | 0;
    let slot = hash & mask;
    for (;;) {
      const o = slot << 2;
      const v = slots[o + 1]!;
      if (v === 0) return -1;
      if (slots[o] === h && slots[o + 3] === len) {
        const s = slots[o + 2]!;
        let j = 0;
        while (j < len && pool[s + j] === token.charCodeAt(j)) j++;
        if (j === len) return v - 1;
      }
      slot = (slot + 1) & mask;
    }
  }

  /** Term numbers in code point order: multikey quicksort (Bentley & Sedgewick) over the pool, no
   * strings made. Code units are remapped so that surrogates sort above U+E000..U+FFFF, which turns
   * UTF-16 order into code point order (= UTF-8 byte order, what prefix search relies on). */
  sortedOrder(): Int32Array {
    const { pool, starts } = this;
    const ids = new Int32Array(this.count);
    for (let t = 0; t < ids.length; t++) ids[t] = t;
    const key = (t: number, depth: number): number => {
      const at = starts[t]! + depth;
      if (at >= starts[t + 1]!) return -1;
      const c = pool[at]!;
      return c < 0xd800 ? c : c >= 0xe000 ? c - 0x800 : c + 0x2000;
    };
    const stack: number[] = [0, ids.length, 0];
    while (stack.length > 0) {
      let depth = stack.pop()!;
      let hi = stack.pop()!;
      let lo = stack.pop()!;
      while (hi - lo > 1) {
        if (hi - lo < 12) {
          for (let i = lo + 1; i < hi; i++) {
            for (let j = i; j > lo; j--) {
              const a = ids[j - 1]!;
              const b = ids[j]!;
              let d = depth;
              let ka = key(a, d);
              let kb = key(b, d);
              while (ka === kb && ka !== -1) {
                d++;
                ka = key(a, d);
                kb = key(b, d);
              }
              if (ka <= kb) break;
              ids[j - 1] = b;
              ids[j] = a;
            }
          }
          break;
        }
        const pivot = key(ids[lo + ((hi - lo) >> 1)]!, depth);
        let lt = lo;
        let gt = hi - 1;
        let i = lo;
        while (i <= gt) {
          const t = ids[i]!;
          const k = key(t, depth);
          if (k < pivot) {
            ids[i++] = ids[lt]!;
            ids[lt++] = t;
          } else if (k > pivot) {
            ids[i] = ids[gt]!;
            ids[gt--] = t;
          } else i++;
        }
        stack.push(lo, lt, depth, gt + 1, hi, depth);
        // Terms are distinct, so at most one term ends here; the rest share one more code unit.
        if (pivot === -1) break;
        lo = lt;
        hi = gt + 1;
        depth++;
      }
    }
    return ids;
  }

  /** UTF-8 length of term t. */
  utf8Length(t: number): number {
    const s = this.starts[t]!;
    const e = this.starts[t + 1]!;
    if (!this.hasNonAscii) return e - s;
    let n = 0;
    for (let i = s; i < e; i++) {
      const c = this.pool[i]!;
      // A surrogate pair (the only way surrogates reach a term) is 4 bytes: 2 per half.
      n += c < 0x80 ? 1 : c < 0x800 ? 2 : c >= 0xd800 && c <= 0xdfff ? 2 : 3;
    }
    return n;
  }

  /** Writes term t as UTF-8 at out[at]; returns the byte count. */
  writeUtf8(t: number, out: Uint8Array, at: number): number {
    const s = this.starts[t]!;
    const e = this.starts[t + 1]!;
    let ascii = true;
    for (let i = s; i < e && ascii; i++) if (this.pool[i]! >= 0x80) ascii = false;
    if (ascii) {
      for (let i = s; i < e; i++) out[at + i - s] = this.pool[i]!;
      return e - s;
    }
    const term = UTF16.decode(this.pool.subarray(s, e));
    return UTF8.encodeInto(term, out.subarray(at)).written;
  }

  private insert(slot: number, hash: number, len: number): number {
    const t = this.count++;
    if (this.count >= this.hashes.length) this.growTerms();
    const start = this.starts[t]!;
    if (start + len > this.pool.length) {
      const pool = new Uint16Array(Math.max(this.pool.length * 2, start + len));
      pool.set(this.pool);
      this.pool = pool;
    }
    this.starts[t + 1] = start + len;
    this.hashes[t] = hash;
    this.setSlot(this.slots, slot, t);
    if (this.count * 2 > this.mask + 1) this.rehash();
    return t;
  }

  private growTerms(): void {
    const cap = this.hashes.length * 2;
    this.starts = grown(this.starts, cap + 1);
    this.hashes = grown(this.hashes, cap);
    this.docFreq = grown(this.docFreq, cap);
    this.seen = grown(this.seen, cap * 2, -1);
  }

  private setSlot(slots: Int32Array, slot: number, t: number): void {
    const o = slot << 2;
    slots[o] = this.hashes[t]!;
    slots[o + 1] = t + 1;
    slots[o + 2] = this.starts[t]!;
    slots[o + 3] = this.starts[t + 1]! - this.starts[t]!;
  }

  private rehash(): void {
    const size = (this.mask + 1) * 2;
    const slots = new Int32Array(size * 4);
    const mask = size - 1;
    for (let t = 0; t < this.count; t++) {
      let slot = this.hashes[t]! & mask;
      while (slots[(slot << 2) + 1] !== 0) slot = (slot + 1) & mask;
      this.setSlot(slots, slot, t);
    }
    this.slots = slots;
    this.mask = mask;
  }
}

type Growable = Int32Array | Uint32Array | Float64Array;

/** A copy of `a` with room for `size` (>= a.length) elements; the new ones hold `fill` (default 0). */
export function grown<T extends Growable>(a: T, size: number, fill?: number): T {
  const b = new (a.constructor as new (length: number) => T)(size);
  b.set(a as never);
  if (fill !== undefined) b.fill(fill, a.length);
  return b;
}
