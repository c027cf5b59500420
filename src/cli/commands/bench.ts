// CLI layer: `ztb-enforce bench classbench` — the classifier benchmark. For each ClassBench rule
// set it measures, in one run and interleaved round by round so load hits every contender alike:
// build time and memory; lookups/s native-only (a C++ loop over the trace, per-packet and batched)
// and through the N-API batch path (batch 32/256/1024, caller-owned arrays, no allocation per
// batch); the linear-scan baseline; DPDK rte_acl via dpdk-test-acl for each algorithm this CPU
// runs (when installed); and the update rate on the loaded set while lookups run. Every result is
// first checked against the linear first match (and a primary trace's last column). Prints medians
// and ratios, writes JSON and an SVG plot to bench/out/. Timings are never asserted anywhere.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CliIo } from '../main.js';
import { flag, hasFlag, parseArgs, UsageError } from '../usage.js';
import {
  CLASSBENCH_DIMS,
  NativeClassifier,
  NO_MATCH,
  benchLookupLoop,
  benchUpdates,
  cpuHasAvx2,
  generateClassbenchTrace,
  parseClassbenchRules,
  parseClassbenchTrace,
  readClassbenchFile,
} from '../../engine/classbench.js';
import { ZtbError } from '../../errors.js';

export const usage = `usage: ztb-enforce bench classbench RULES [TRACE] [options]
       ztb-enforce bench classbench --all [options]

Benchmarks the native classifier on a ClassBench rule set (and trace; without one a seeded
trace of rule corners is generated), side by side with a linear scan and DPDK rte_acl
(dpdk-test-acl, when installed). Files may be gzipped (*.gz).

options:
  --all              acl1/fw1/ipc1 at 1K and 10K plus the 100K-class sets (bench/classbench)
  --rounds N         interleaved rounds, medians reported (default 5)
  --json             print the JSON report instead of the table
  --results FILE     write each header's 1-based first matching rule (0 = none), one per line
  --out DIR          where JSON and SVG go (default bench/out)
  --no-dpdk          skip rte_acl even when dpdk-test-acl is installed
  --no-updates       skip the update-rate measurement
  --trace-len N      headers to generate when there is no trace (default 100000)`;

const HERE = dirname(fileURLToPath(import.meta.url));
// src/cli/commands or dist/cli/commands -> package root.
const ROOT = resolve(HERE, '..', '..', '..');
const DATA = process.env.ZTB_CLASSBENCH_DIR ?? join(ROOT, 'bench', 'classbench');

const RULE_WORDS = 2 + 2 * CLASSBENCH_DIMS;
// dpdk-test-acl runs with `-l 1`; our native loops pin to the same CPU for the measurement.
const BENCH_CPU = cpus().length > 1 ? 1 : 0;

interface SetSpec {
  name: string;
  rules: string;
  trace?: string;
}

export interface SetReport {
  name: string;
  rules: number;
  trace: { headers: number; generated: boolean };
  verified: { headers: number; mismatches: number; traceColumnMismatches: number | null };
  buildMs: number;
  memoryBytes: number;
  groups: number;
  simd: string;
  mpps: Record<string, number>; // medians: ours-single, ours-batch, napi-32/256/1024, linear, rte_acl-<alg>
  rounds: Record<string, number[]>;
  updates?: { updatesPerSec: number; updatesPerWriterCpuSec: number; lookupsPerSecDuring: number; rebuilds: number; maxDelta: number };
}

function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function findData(rel: string): string | undefined {
  for (const p of [join(DATA, rel), join(DATA, rel + '.gz'), join('/work/shared/classbench', rel)]) {
    if (existsSync(p)) return p;
  }
  return undefined;
}

function allSets(): SetSpec[] {
  const out: SetSpec[] = [];
  for (const size of ['1k', '10k']) {
    for (const fam of ['acl1', 'fw1', 'ipc1']) {
      const rules = findData(`${fam}_${size}.rules`);
      const trace = findData(`${fam}_${size}.trace`);
      if (!rules || !trace) throw new ZtbError('ERR_ZTB_BENCH', `ClassBench set ${fam}_${size} not found under ${DATA}`);
      out.push({ name: `${fam}_${size}`, rules, trace });
    }
  }
  for (const fam of ['acl1', 'fw1']) {
    const rules = findData(`large/${fam}_100k.rules`);
    if (!rules) throw new ZtbError('ERR_ZTB_BENCH', `ClassBench set large/${fam}_100k not found under ${DATA}`);
    out.push({ name: `${fam}_100k`, rules });
  }
  return out;
}

function dpdkAlgs(): string[] {
  const probe = spawnSync('sh', ['-c', 'command -v dpdk-test-acl'], { encoding: 'utf8' });
  if (probe.status !== 0) return [];
  const algs = ['scalar', 'sse'];
  if (cpuHasAvx2()) algs.push('avx2');
  const flags = cpus()[0] ? spawnSync('grep', ['-m1', '-o', 'avx512bw', '/proc/cpuinfo'], { encoding: 'utf8' }) : null;
  if (flags && flags.status === 0 && flags.stdout.includes('avx512bw')) algs.push('avx512x16', 'avx512x32');
  return algs;
}

/** One dpdk-test-acl run; returns Mpps parsed from its `pkt/sec`, or NaN with the reason. */
function runDpdk(alg: string, rulesFile: string, traceFile: string, headers: number, iters: number, tag: string): number {
  const simdWidth = alg.startsWith('avx512') ? 512 : 256;
  // A prefix of our own keeps concurrent runs apart; its runtime directory is removed afterwards
  // (EAL's --in-memory, which would avoid it, crashes dpdk-test-acl here).
  const prefix = `ztbbench${process.pid}${tag}`;
  const args = [
    '--no-huge', '-m', '1024', '--no-pci', '-l', String(BENCH_CPU), `--force-max-simd-bitwidth=${simdWidth}`,
    `--file-prefix=${prefix}`, '--log-level=lib.*:error', '--',
    `--rulesf=${rulesFile}`, `--tracef=${traceFile}`, `--tracenum=${headers}`, `--iter=${iters}`,
    '--verbose=0', `--alg=${alg}`,
  ];
  const r = spawnSync('dpdk-test-acl', args, { encoding: 'utf8', timeout: 600_000 });
  rmSync(join('/var/run/dpdk', prefix), { recursive: true, force: true });
  const m = /([\d.]+) pkt\/sec/.exec(r.stdout ?? '');
  if (!m) return NaN;
  return Number(m[1]) / 1e6;
}

function fmt(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return '-';
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

export async function run(argv: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'classbench') throw new UsageError(sub ? `unknown benchmark '${sub}'` : 'missing benchmark name');
  const args = parseArgs(rest, {
    all: {},
    rounds: { value: true },
    json: {},
    results: { value: true },
    out: { value: true },
    'no-dpdk': {},
    'no-updates': {},
    'trace-len': { value: true },
  });
  const rounds = Number(flag(args, 'rounds') ?? '5');
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 100) throw new UsageError('--rounds must be 1..100');
  const traceLen = Number(flag(args, 'trace-len') ?? '100000');
  if (!Number.isInteger(traceLen) || traceLen < 1 || traceLen > 10_000_000) throw new UsageError('--trace-len must be 1..10000000');
  const resultsFile = flag(args, 'results');
  let sets: SetSpec[];
  if (hasFlag(args, 'all')) {
    if (args.positionals.length > 0) throw new UsageError('--all takes no RULES/TRACE');
    if (resultsFile) throw new UsageError('--results needs a single RULES set, not --all');
    sets = allSets();
  } else {
    if (args.positionals.length < 1 || args.positionals.length > 2) throw new UsageError('expected RULES [TRACE]');
    const [rules, trace] = args.positionals as [string, string | undefined];
    if (!existsSync(rules)) throw new ZtbError('ERR_ZTB_BENCH', `${rules}: no such file`);
    if (trace !== undefined && !existsSync(trace)) throw new ZtbError('ERR_ZTB_BENCH', `${trace}: no such file`);
    sets = [{ name: basename(rules).replace(/\.gz$/, '').replace(/\.rules$/, ''), rules, ...(trace ? { trace } : {}) }];
  }
  const algs = hasFlag(args, 'no-dpdk') ? [] : dpdkAlgs();
  const outDir = resolve(flag(args, 'out') ?? join(ROOT, 'bench', 'out'));
  const tmp = mkdtempSync(join(tmpdir(), 'ztb-bench-'));
  const log = (s: string) => {
    if (!hasFlag(args, 'json')) io.stderr.write(s + '\n');
  };
  const load0 = loadavg()[0]!;
  const reports: SetReport[] = [];
  try {
    for (const set of sets) {
      reports.push(benchSet(set, { rounds, traceLen, algs, tmp, resultsFile, updates: !hasFlag(args, 'no-updates'), log }));
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const report = {
    when: new Date().toISOString(),
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, avx2: cpuHasAvx2(), loadavgStart: load0, loadavgEnd: loadavg()[0] },
    rounds,
    dpdkAlgorithms: algs,
    sets: reports,
  };
  mkdirSync(outDir, { recursive: true });
  const stamp = report.when.replace(/[:.]/g, '-');
  writeFileSync(join(outDir, `classbench-${stamp}.json`), JSON.stringify(report, null, 2) + '\n');
  writeFileSync(join(outDir, 'classbench-latest.json'), JSON.stringify(report, null, 2) + '\n');
  writeFileSync(join(outDir, 'classbench.svg'), renderSvg(reports, algs));
  if (hasFlag(args, 'json')) {
    io.stdout.write(JSON.stringify(report, null, 2) + '\n');
  } else {
    io.stdout.write(renderTable(reports, algs, report.machine));
    io.stdout.write(`\nJSON: ${join(outDir, `classbench-${stamp}.json`)}\nplot: ${join(outDir, 'classbench.svg')}\n`);
  }
  const bad = reports.some((r) => r.verified.mismatches > 0 || (r.verified.traceColumnMismatches ?? 0) > 0);
  return bad ? 1 : 0;
}

interface BenchOpts {
  rounds: number;
  traceLen: number;
  algs: string[];
  tmp: string;
  resultsFile: string | undefined;
  updates: boolean;
  log: (s: string) => void;
}

function benchSet(set: SetSpec, o: BenchOpts): SetReport {
  const rulesText = readClassbenchFile(set.rules);
  const rules = parseClassbenchRules(rulesText);
  const nRules = rules.length / RULE_WORDS;
  let keys: Uint32Array;
  let last: Uint32Array | null = null;
  let alt = false;
  let generated = false;
  if (set.trace) {
    const t = parseClassbenchTrace(readClassbenchFile(set.trace));
    keys = t.keys;
    last = t.last;
    alt = t.alt;
  } else {
    keys = generateClassbenchTrace(rules, o.traceLen, 1);
    generated = true;
  }
  const n = keys.length / CLASSBENCH_DIMS;
  o.log(`${set.name}: ${nRules} rules, ${n} headers${generated ? ' (generated, seed 1)' : ''}`);

  // Plain-text copies for dpdk-test-acl (it cannot read gzip, and needs a trace file).
  const rulesPlain = join(o.tmp, `${set.name}.rules`);
  const tracePlain = join(o.tmp, `${set.name}.trace`);
  writeFileSync(rulesPlain, rulesText);
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const k = keys.subarray(i * 5, i * 5 + 5);
    lines.push(`${k[0]} ${k[1]} ${k[2]} ${k[3]} ${k[4]} 0`);
  }
  writeFileSync(tracePlain, lines.join('\n') + '\n');

  // Correctness first: classifier vs linear first match, and the primary trace's column.
  const linear = NativeClassifier.build(rules, CLASSBENCH_DIMS, { linear: true });
  const expected = new Uint32Array(n);
  linear.lookupBatch(keys, expected);
  let c = NativeClassifier.build(rules, CLASSBENCH_DIMS);
  const got = new Uint32Array(n);
  c.lookupBatch(keys, got);
  let mismatches = 0;
  let colBad: number | null = null;
  for (let i = 0; i < n; i++) if (got[i] !== expected[i]) mismatches++;
  if (last && !alt) {
    colBad = 0;
    for (let i = 0; i < n; i++) if (expected[i]! + 1 !== last[i]) colBad++;
  }
  if (o.resultsFile) {
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(String(got[i] === NO_MATCH ? 0 : got[i]! + 1));
    writeFileSync(o.resultsFile, out.join('\n') + '\n');
  }
  const info = c.info();

  const rounds: Record<string, number[]> = {};
  const push = (k: string, v: number) => (rounds[k] ??= []).push(v);
  const targetLookups = 3_000_000;
  const iters = Math.max(1, Math.ceil(targetLookups / n));
  // Linear is slow: time it on a prefix of the trace.
  const linN = Math.max(1, Math.min(n, Math.floor(2e8 / Math.max(1, nRules) / 5)));
  const linKeys = keys.subarray(0, linN * CLASSBENCH_DIMS);
  // N-API path: views made once, so timing covers only the calls.
  const napiViews = new Map<number, Uint32Array[]>();
  for (const b of [32, 256, 1024]) {
    const views: Uint32Array[] = [];
    for (let i = 0; i < n; i += b) views.push(keys.subarray(i * 5, Math.min(n, i + b) * 5));
    napiViews.set(b, views);
  }
  const outBuf = new Uint32Array(1024);
  const napiIters = Math.max(1, Math.ceil(1_000_000 / n));
  const buildMs: number[] = [];

  for (let r = 0; r < o.rounds; r++) {
    const t0 = process.hrtime.bigint();
    c = NativeClassifier.build(rules, CLASSBENCH_DIMS);
    buildMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const single = benchLookupLoop(c, keys, iters, 0, BENCH_CPU);
    push('ours-single', single.lookups / single.seconds / 1e6);
    for (const alg of o.algs) {
      push(`rte_acl-${alg}`, runDpdk(alg, rulesPlain, tracePlain, n, iters, `${r}`));
    }
    const batch = benchLookupLoop(c, keys, iters, 256, BENCH_CPU);
    push('ours-batch256', batch.lookups / batch.seconds / 1e6);
    for (const [b, views] of napiViews) {
      const s = process.hrtime.bigint();
      for (let it = 0; it < napiIters; it++) for (const v of views) c.lookupBatch(v, outBuf);
      const secs = Number(process.hrtime.bigint() - s) / 1e9;
      push(`napi-${b}`, (napiIters * n) / secs / 1e6);
    }
    const lin = benchLookupLoop(linear, linKeys, 1, 0, BENCH_CPU);
    push('linear', lin.lookups / lin.seconds / 1e6);
    if (o.updates && r < 3) {
      const u = benchUpdates(rules, CLASSBENCH_DIMS, keys, 200_000);
      if (u.invariants !== 'ok') throw new ZtbError('ERR_ZTB_BENCH', `${set.name}: updatable invariant broken: ${u.invariants}`);
      push('updates/s', u.updatesPerSec);
      push('updates/writer-cpu-s', u.updatesPerWriterCpuSec);
      push('lookups-during-updates', u.lookupsPerSec / 1e6);
      push('rebuilds', u.rebuilds);
      push('maxDelta', u.maxDelta);
    }
    o.log(`  round ${r + 1}/${o.rounds}: ` + Object.entries(rounds).map(([k, v]) => `${k} ${fmt(v[v.length - 1])}`).join(', '));
  }
  const mpps: Record<string, number> = {};
  for (const [k, v] of Object.entries(rounds)) if (!['updates/s', 'updates/writer-cpu-s', 'lookups-during-updates', 'rebuilds', 'maxDelta'].includes(k)) mpps[k] = median(v);
  const rep: SetReport = {
    name: set.name,
    rules: nRules,
    trace: { headers: n, generated },
    verified: { headers: n, mismatches, traceColumnMismatches: colBad },
    buildMs: median(buildMs),
    memoryBytes: info.memoryBytes,
    groups: info.groups,
    simd: info.simd,
    mpps,
    rounds,
  };
  if (rounds['updates/s']) {
    rep.updates = {
      updatesPerSec: median(rounds['updates/s']),
      updatesPerWriterCpuSec: median(rounds['updates/writer-cpu-s']!),
      lookupsPerSecDuring: median(rounds['lookups-during-updates']!) * 1e6,
      rebuilds: median(rounds['rebuilds']!),
      maxDelta: median(rounds['maxDelta']!),
    };
  }
  return rep;
}

function bestDpdk(r: SetReport, algs: string[]): { alg: string; mpps: number } | undefined {
  let best: { alg: string; mpps: number } | undefined;
  for (const a of algs) {
    const v = r.mpps[`rte_acl-${a}`];
    if (v !== undefined && Number.isFinite(v) && (!best || v > best.mpps)) best = { alg: a, mpps: v };
  }
  return best;
}

function renderTable(reports: SetReport[], algs: string[], machine: { cpu: string; loadavgStart: number; loadavgEnd: number | undefined }): string {
  const cols = ['set', 'rules', 'build ms', 'MiB', 'ours 1x1', 'ours b256', 'napi 32', 'napi 256', 'napi 1024',
    ...algs.map((a) => `acl ${a}`), 'linear', 'ours/acl-best', 'ours/linear', 'upd/s', 'upd/cpu-s', 'Mpps@upd', 'ok'];
  const rows: string[][] = [cols];
  for (const r of reports) {
    const best = bestDpdk(r, algs);
    const ours = r.mpps['ours-batch256']!;
    rows.push([
      r.name, String(r.rules), fmt(r.buildMs), fmt(r.memoryBytes / 2 ** 20), fmt(r.mpps['ours-single']), fmt(ours),
      fmt(r.mpps['napi-32']), fmt(r.mpps['napi-256']), fmt(r.mpps['napi-1024']),
      ...algs.map((a) => fmt(r.mpps[`rte_acl-${a}`])), fmt(r.mpps['linear']),
      best ? `${(ours / best.mpps).toFixed(2)}x (${best.alg})` : '-', `${fmt(ours / r.mpps['linear']!)}x`,
      r.updates ? fmt(r.updates.updatesPerSec) : '-', r.updates ? fmt(r.updates.updatesPerWriterCpuSec) : '-',
      r.updates ? fmt(r.updates.lookupsPerSecDuring / 1e6) : '-',
      r.verified.mismatches === 0 && (r.verified.traceColumnMismatches ?? 0) === 0 ? 'yes' : 'NO',
    ]);
  }
  const widths = cols.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const text = rows.map((row) => row.map((c, i) => c.padStart(widths[i]!)).join('  ')).join('\n');
  return `rates in Mpps (medians); ours b256 = native batch of 256 (rte_acl also runs bursts of 256);\n` +
    `upd/s = insert+erase per wall second with a reader running, upd/cpu-s = per writer CPU second\n` +
    `cpu: ${machine.cpu}; load average ${machine.loadavgStart.toFixed(2)} -> ${(machine.loadavgEnd ?? 0).toFixed(2)}\n${text}\n`;
}

/** Log-log plot of rate vs rule count: ours (native batch), rte_acl best, linear. */
export function renderSvg(reports: SetReport[], algs: string[]): string {
  const W = 760, H = 460, L = 70, R = 170, T = 40, B = 60;
  const pts: Array<{ series: string; fam: string; x: number; y: number; label: string }> = [];
  for (const r of reports) {
    const fam = r.name.split('_')[0]!;
    const add = (series: string, v: number | undefined) => {
      if (v !== undefined && Number.isFinite(v) && v > 0) pts.push({ series, fam, x: r.rules, y: v, label: r.name });
    };
    add('ours (native batch 256)', r.mpps['ours-batch256']);
    add('ours (N-API batch 256)', r.mpps['napi-256']);
    add('rte_acl best', bestDpdk(r, algs)?.mpps);
    add('linear scan', r.mpps['linear']);
  }
  const colors: Record<string, string> = {
    'ours (native batch 256)': '#1f77b4', 'ours (N-API batch 256)': '#6baed6', 'rte_acl best': '#d62728', 'linear scan': '#7f7f7f',
  };
  const marks: Record<string, string> = { acl1: 'circle', fw1: 'square', ipc1: 'triangle' };
  const xs = pts.map((p) => Math.log10(p.x));
  const ys = pts.map((p) => Math.log10(p.y));
  const x0 = Math.floor(Math.min(2.5, ...xs)), x1 = Math.ceil(Math.max(5, ...xs));
  const y0 = Math.floor(Math.min(-1, ...ys)), y1 = Math.ceil(Math.max(1.5, ...ys));
  const sx = (v: number) => L + ((Math.log10(v) - x0) / (x1 - x0)) * (W - L - R);
  const sy = (v: number) => H - B - ((Math.log10(v) - y0) / (y1 - y0)) * (H - T - B);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${L}" y="22" font-size="15">ClassBench lookup rate vs rule-set size (single core, medians)</text>`);
  for (let e = x0; e <= x1; e++) {
    const x = sx(10 ** e);
    out.push(`<line x1="${x}" y1="${T}" x2="${x}" y2="${H - B}" stroke="#ddd"/><text x="${x}" y="${H - B + 16}" text-anchor="middle">${10 ** e >= 1000 ? `${10 ** (e - 3)}K` : 10 ** e}</text>`);
  }
  for (let e = y0; e <= y1; e++) {
    const y = sy(10 ** e);
    out.push(`<line x1="${L}" y1="${y}" x2="${W - R}" y2="${y}" stroke="#ddd"/><text x="${L - 6}" y="${y + 4}" text-anchor="end">${10 ** e}</text>`);
  }
  out.push(`<text x="${(L + W - R) / 2}" y="${H - 18}" text-anchor="middle">rules (log)</text>`);
  out.push(`<text x="18" y="${(T + H - B) / 2}" transform="rotate(-90 18 ${(T + H - B) / 2})" text-anchor="middle">Mpps (log)</text>`);
  const series = Object.keys(colors);
  for (const s of series) {
    for (const fam of Object.keys(marks)) {
      const line = pts.filter((p) => p.series === s && p.fam === fam).sort((a, b) => a.x - b.x);
      if (line.length > 1) {
        out.push(`<polyline fill="none" stroke="${colors[s]}" stroke-width="1.5" points="${line.map((p) => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(' ')}"/>`);
      }
      for (const p of line) {
        const x = sx(p.x), y = sy(p.y), c = colors[s];
        if (marks[fam] === 'circle') out.push(`<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="4" fill="${c}" stroke="#333"><title>${p.label} ${s}: ${p.y.toFixed(2)} Mpps</title></circle>`);
        else if (marks[fam] === 'square') out.push(`<rect x="${(x - 4).toFixed(1)}" y="${(y - 4).toFixed(1)}" width="8" height="8" fill="${c}"><title>${p.label} ${s}: ${p.y.toFixed(2)} Mpps</title></rect>`);
        else out.push(`<path d="M${x.toFixed(1)},${(y - 5).toFixed(1)} l5,9 h-10 z" fill="${c}"><title>${p.label} ${s}: ${p.y.toFixed(2)} Mpps</title></path>`);
      }
    }
  }
  let ly = T + 10;
  for (const s of series) {
    out.push(`<rect x="${W - R + 14}" y="${ly - 9}" width="12" height="12" fill="${colors[s]}"/><text x="${W - R + 32}" y="${ly + 1}">${s}</text>`);
    ly += 20;
  }
  ly += 8;
  for (const [fam, m] of Object.entries(marks)) {
    out.push(`<text x="${W - R + 14}" y="${ly}">${m === 'circle' ? '●' : m === 'square' ? '■' : '▲'} ${fam}</text>`);
    ly += 18;
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}
