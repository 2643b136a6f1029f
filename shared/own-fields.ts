// Reading and writing fields of documents and answers named by users, where a name may be one a
// plain object's prototype already answers to (`constructor`, `toString`) or `__proto__`, whose
// assignment sets the prototype instead of a field. Both are fields like any other here.

/** A document's own field (absent: undefined), never one its prototype lends (`constructor`). */
export function own(doc: Readonly<Record<string, unknown>>, field: string): unknown {
  return Object.hasOwn(doc, field) ? doc[field] : undefined;
}

/** `out[key] = value` as JSON.parse would make it: `__proto__` an own field, not the prototype. */
export function setOwn(out: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  } else out[key] = value;
}

/** `doc` with only its own `fields` (absent ones stay absent), `__proto__` included as a field. */
export function pickOwn(
  doc: Readonly<Record<string, unknown>>,
  fields: readonly string[],
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of fields) {
    const v = own(doc, f);
    if (v !== undefined) setOwn(out, f, v);
  }
  return out;
}
