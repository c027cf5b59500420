// Lists the addon's C++ sources for binding.gyp, so adding a file under native/ needs no edit of
// the build file. native/core is portable C++; native/binding is the only N-API code; native/io is
// platform packet and device I/O, whose files name their platform in a suffix (_linux, _openbsd)
// and are built only there.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const platform = process.platform;
const dirs = ['native/core', 'native/binding', 'native/io'];
const out = [];
for (const d of dirs) {
  let names = [];
  try { names = readdirSync(d); } catch { continue; }
  for (const n of names.sort()) {
    if (!n.endsWith('.cc')) continue;
    const m = /_(linux|openbsd|freebsd|darwin)\.cc$/.exec(n);
    if (m && m[1] !== platform) continue;
    out.push(join(d, n));
  }
}
process.stdout.write(out.join(' '));
