// How entrypoints read signals (shared/shutdown-signals.ts): the first asks for a graceful stop,
// a copy within the window (the terminal's and npm's for one Ctrl-C) is ignored, a later one forces.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DUPLICATE_SIGNAL_WINDOW_MS, ShutdownSignals } from '../../shared/shutdown-signals.ts';

test('one Ctrl-C delivered twice is one graceful request', () => {
  const signals = new ShutdownSignals();
  assert.equal(signals.receive(10_000), 'graceful');
  assert.equal(signals.receive(10_003), 'duplicate');
  assert.equal(signals.receive(10_000 + DUPLICATE_SIGNAL_WINDOW_MS - 1), 'duplicate');
});

test('a signal after the window forces, and so does every one after it', () => {
  const signals = new ShutdownSignals(500);
  assert.equal(signals.receive(0), 'graceful');
  assert.equal(signals.receive(500), 'forced');
  assert.equal(signals.receive(501), 'forced');
});
