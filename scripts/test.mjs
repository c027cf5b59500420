// The README's test command (`npm test`). Builds what the tests use (addon, dist/ for CLI tests),
// runs the C++ core tests under ASan/UBSan (scripts/native-tests.mjs), then vitest, and prints one
// plain closing line `N passed, N failed` summed over both, because CI reads that line and not
// vitest's own summary. Extra arguments go to vitest (e.g. a file filter).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';

const args = process.argv.slice(2);
const quick = process.env.ZTB_TEST_SKIP_BUILD === '1';

function run(cmd, cmdArgs, opts = {}) {
  const r = spawnSync(cmd, cmdArgs, { stdio: 'inherit', ...opts });
  if (r.error) throw r.error;
  return r.status ?? 1;
}

let passed = 0;
let failed = 0;
let skipped = 0;

if (!quick) {
  if (run(process.execPath, ['scripts/build-native.mjs', '--if-needed']) !== 0) {
    console.error('test: native build failed');
    process.exit(1);
  }
  if (run(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json']) !== 0) {
    console.error('test: TypeScript build failed');
    failed++;
  }
}

// C++ core tests (sanitizers). The script prints `native: N passed, N failed` as its last line.
if (existsSync('scripts/native-tests.mjs') && args.length === 0) {
  const r = spawnSync(process.execPath, ['scripts/native-tests.mjs'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  process.stdout.write(r.stdout ?? '');
  const m = /native: (\d+) passed, (\d+) failed/.exec(r.stdout ?? '');
  if (m) {
    passed += Number(m[1]);
    failed += Number(m[2]);
  }
  if (r.status !== 0 && (!m || Number(m[2]) === 0)) failed++;
}

const report = '.vitest-report.json';
rmSync(report, { force: true });
const vstatus = run(process.execPath, [
  'node_modules/vitest/vitest.mjs', 'run',
  '--reporter=default', '--reporter=json', `--outputFile.json=${report}`,
  ...args,
]);
if (existsSync(report)) {
  const j = JSON.parse(readFileSync(report, 'utf8'));
  passed += j.numPassedTests ?? 0;
  failed += j.numFailedTests ?? 0;
  skipped += (j.numPendingTests ?? 0) + (j.numTodoTests ?? 0);
  // A file that fails to load has no tests counted; count it as a failure.
  for (const f of j.testResults ?? []) {
    if (f.status === 'failed' && (f.assertionResults ?? []).length === 0) failed++;
  }
} else if (vstatus !== 0) {
  failed++;
}
if (vstatus !== 0 && failed === 0) failed++;

console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 ? 1 : 0);
