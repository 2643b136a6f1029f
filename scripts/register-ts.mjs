// `node --import ./scripts/register-ts.mjs <entry>.ts`, as the npm scripts start things: on a Node
// that strips types itself (24, 22.18+) it does nothing, so production needs no tsx; on Node 20 it
// registers tsx (a devDependency) for the process.
if (typeof process.features.typescript !== 'string') {
  const { register } = await import('tsx/esm/api');
  register();
}
