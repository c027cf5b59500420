// Builds the addon with node-gyp. Node's headers are taken from the local installation
// (/usr/include/node on Debian) so a fresh machine with no internet access can build: without an
// explicit --nodedir node-gyp tries to download headers and fails here.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
let gyp;
try {
  gyp = require.resolve('node-gyp/bin/node-gyp.js');
} catch {
  // npm ships its own node-gyp; use it when devDependencies are not installed.
  const npmDir = dirname(dirname(process.execPath));
  const bundled = join(npmDir, 'lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js');
  if (existsSync(bundled)) gyp = bundled;
}
if (!gyp) {
  console.error('ztb-enforce: node-gyp not found (npm install node-gyp, or use npm\'s bundled copy)');
  process.exit(1);
}
// --if-needed: incremental `build` when a configured build tree exists (used by `npm test`).
const incremental = process.argv.includes('--if-needed') && existsSync('build/Makefile');
const args = [gyp, incremental ? 'build' : 'rebuild', '--release', '-j', '2'];
const headerRoots = [process.env.npm_config_nodedir, dirname(dirname(process.execPath)), '/usr'];
for (const root of headerRoots) {
  if (root && existsSync(join(root, 'include/node/node_api.h'))) {
    args.push(`--nodedir=${root}`);
    break;
  }
}
const r = spawnSync(process.execPath, args, { stdio: 'inherit' });
process.exit(r.status ?? 1);
