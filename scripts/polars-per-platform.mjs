// Run in the image build before `npm ci`: makes every Polars platform binary an optional
// dependency, so npm installs the one matching the image's platform (linux x64 or arm64, glibc)
// and skips the others. package.json keeps the x64 binary a plain dependency because npm on Node
// 20 (the development machines) skips an optional package whose `engines` (node >= 22) it does not
// satisfy, and Polars would then be missing there; on arm64 that plain dependency would fail the
// install. The lockfile already lists every binary as an optional dependency of nodejs-polars, so
// `npm ci` accepts the moved entries.
import { readFileSync, writeFileSync } from 'node:fs';

const BINARY = /^nodejs-polars-(linux|darwin|win32|android)-/;
const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
pkg.optionalDependencies ??= {};
for (const [name, version] of Object.entries(pkg.dependencies ?? {})) {
  if (!BINARY.test(name)) continue;
  delete pkg.dependencies[name];
  pkg.optionalDependencies[name] = version;
}
writeFileSync('package.json', `${JSON.stringify(pkg, null, 2)}\n`);
