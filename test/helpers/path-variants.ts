// The ways an attacker writes one path so that a router might decode it to a route its text does
// not name: percent-encoded letters and slashes, double encoding, `//`, `/./`, `/../`, trailing
// slashes, case, parameters and query strings. The attack tests send every route under each.
/** Percent-encodes one character; `upper` picks the hex digits' case. */
const pct = (ch: string, upper = false) => {
  const hex = ch.charCodeAt(0).toString(16).padStart(2, '0');
  return `%${upper ? hex.toUpperCase() : hex}`;
};
const encodeFirstLetter = (segment: string, upper = false) =>
  segment.replace(/[a-z]/i, (ch) => pct(ch, upper));

/** The path of `p` written every way an attacker would try. */
export function variants(p: string): string[] {
  const segs = p.split('/').slice(1);
  const join = (parts: string[], sep = '/') => `/${parts.join(sep)}`;
  const out = [
    p,
    join(segs.map((s) => encodeFirstLetter(s))),
    join(segs.map((s) => encodeFirstLetter(s, true))),
    join(segs.map((s) => [...s].map((c) => pct(c)).join(''))),
    join(segs.map((s) => s.replace(/[a-z]/i, (ch) => `%25${pct(ch).slice(1)}`))),
    join(segs, '%2F'),
    join(segs, '%2f'),
    join(segs, '%252F'),
    `/${join(segs)}`,
    join(segs, '//'),
    `/.${join(segs)}`,
    join(segs, '/./'),
    `/x/..${join(segs)}`,
    `${join(segs.slice(0, 1))}/x/..${join(segs.slice(1))}`,
    `${p}/`,
    `${p}/.`,
    p.toUpperCase(),
    join(segs.map((s) => s.charAt(0).toUpperCase() + s.slice(1))),
    `${p};x=1`,
    `${p}%3Fx=1`,
    `${p}%00`,
    `${p}?`,
    `${p}?x=1`,
    `${p}?wait=1&wait=2`,
    `${p}?q=a&q=b`,
  ];
  return [...new Set(out)];
}
