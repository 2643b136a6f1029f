// The JS engine reads wall times from Intl's format() text (cheaper than formatToParts); that
// reading must equal formatToParts' on every instant, in zones with odd offsets and DST rules,
// BC years and far-future years included. Property-style: seeded instants, every one compared.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readsWallText, wallTime, wallTimeByParts } from '../../workers/engines/js-buckets.ts';

const ZONES = [
  'America/Los_Angeles',
  'America/New_York',
  'Asia/Kolkata',
  'Asia/Kathmandu',
  'Australia/Lord_Howe',
  'Europe/London',
  'Pacific/Apia',
  'Pacific/Chatham',
  'America/St_Johns',
];

/** A small deterministic generator (mulberry32): the same instants on every run. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('the text reading of a wall time equals formatToParts on every instant tried', () => {
  const next = random(20261206);
  const low = Date.UTC(-999, 0, 1);
  const high = Date.UTC(2999, 11, 31);
  for (const zone of ZONES) {
    // Node 20's and 24's ICU both write the text the reader parses: the fast path is the one tested.
    assert.ok(readsWallText(zone), `${zone}: format() text not recognized, formatToParts in use`);
    const instants = [0, -1, low, high];
    for (let i = 0; i < 1500; i++) instants.push(Math.floor(low + next() * (high - low)));
    // Near now, where DST rules matter most: every 7 hours and 13 minutes over 4 years.
    for (let t = Date.UTC(2022, 0, 1); t < Date.UTC(2026, 0, 1); t += 26_000_000) instants.push(t);
    for (const t of instants) {
      assert.equal(wallTime(t, zone), wallTimeByParts(t, zone), `${zone} at ${new Date(t).toISOString()}`);
    }
  }
});
