// Builds and runs the C++ core test binary under AddressSanitizer, UndefinedBehaviorSanitizer and
// LeakSanitizer: native/core/*.cc (portable core, no N-API) + native/test/*.cc. Object files are
// cached in native/test/build by source mtime so repeated runs only recompile what changed.
// Prints the binary's `native: N passed, N failed` line last; exits non-zero on any failure or
// sanitizer report.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';

const cxx = process.env.CXX || 'g++';
const out = 'native/test/build';
mkdirSync(out, { recursive: true });
const flags = ['-std=c++20', '-O1', '-g', '-fno-omit-frame-pointer', '-fsanitize=address,undefined',
  '-fno-sanitize-recover=undefined', '-Wall', '-Wextra', '-Wno-unused-parameter', '-Inative'];
const sources = [];
for (const dir of ['native/core', 'native/test']) {
  for (const n of readdirSync(dir).sort()) if (n.endsWith('.cc')) sources.push(join(dir, n));
}
const headers = [];
for (const dir of ['native/core', 'native/test']) {
  for (const n of readdirSync(dir)) if (n.endsWith('.h')) headers.push(join(dir, n));
}
const newestHeader = Math.max(0, ...headers.map((h) => statSync(h).mtimeMs));
const objects = [];
const jobs = [];
for (const src of sources) {
  const obj = join(out, basename(src).replace(/\.cc$/, '.o').replace(/^/, src.startsWith('native/test') ? 't_' : 'c_'));
  objects.push(obj);
  const stale = !existsSync(obj) || statSync(obj).mtimeMs < Math.max(statSync(src).mtimeMs, newestHeader);
  if (stale) jobs.push([src, obj]);
}
// Two compilers at a time: the machine has two cores.
async function compileAll() {
  const { spawn } = await import('node:child_process');
  let failed = false;
  const queue = [...jobs];
  async function worker() {
    while (queue.length) {
      const [src, obj] = queue.shift();
      const code = await new Promise((res) => {
        const p = spawn(cxx, [...flags, '-c', src, '-o', obj], { stdio: 'inherit' });
        p.on('close', res);
      });
      if (code !== 0) failed = true;
    }
  }
  await Promise.all([worker(), worker()]);
  return !failed;
}
if (!(await compileAll())) {
  console.log('native: 0 passed, 1 failed');
  process.exit(1);
}
const bin = join(out, 'ztb_core_tests');
const link = spawnSync(cxx, [...flags, ...objects, '-o', bin, '-lpthread'], { stdio: 'inherit' });
if (link.status !== 0) {
  console.log('native: 0 passed, 1 failed');
  process.exit(1);
}
const env = { ...process.env, ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0', UBSAN_OPTIONS: 'print_stacktrace=1' };
const r = spawnSync(bin, process.argv.slice(2), { stdio: ['ignore', 'inherit', 'inherit'], env });
process.exit(r.status ?? 1);
