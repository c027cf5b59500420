// Bench (pf backend): the cost of turning a compiled policy into a pf load, per form, for policies
// of N rules spread over a main ruleset and tenant anchors (N = 100, 1000, 10000 by default):
// encode (IR -> pf_rule images), plan (the full ioctl transaction), run on the simulated kernel,
// and the text form (renderPfText, what pfctl would read). Medians over repetitions, ratios to the
// text form side by side, bytes handed to the kernel per rule. It asserts nothing. Run with
// `node bench/pf-bench.mjs [--sizes 100,1000,10000] [--reps 7] [--json FILE]`.
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { getRelease } from '../src/backends/pf/abi/releases.js';
import { encodeIr } from '../src/backends/pf/encode.js';
import { executePlan, planLoad } from '../src/backends/pf/plan.js';
import { SimulatedPfDevice } from '../src/backends/pf/sim-device.js';
import { renderPfText } from '../src/backends/pf/text.js';
import { compilePf } from '../src/policy/compile.js';
import type { Ir } from '../src/policy/ir.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : def;
}

const sizes = arg('sizes', '100,1000,10000').split(',').map(Number);
const reps = Number(arg('reps', '7'));
const jsonOut = arg('json', '');
const R = getRelease('pfvar-1.543');

/** N rules: a quarter in main, the rest in four tenant anchors, with tables and translations. */
function policyText(n: number): string {
  const lines = ['set skip on lo0', 'set loginterface em0', 'table <admins> { 192.168.1.0/24 !192.168.1.66 }', 'block all'];
  const perAnchor = Math.floor((n * 3) / 4 / 4);
  for (let t = 1; t <= 4; t++) lines.push(`anchor "tenant${t}" on vether0.${t}0`);
  for (let i = lines.length - 4; lines.length - 4 < n - perAnchor * 4; i++) {
    const a = (i >> 8) & 255;
    const b = i & 255;
    lines.push(i % 7 === 0
      ? `match out on em0 inet from 10.${a}.${b}.0/24 to any nat-to (em0:0)`
      : `pass in quick on em0 inet proto tcp from 10.${a}.${b}.0/24 to <admins> port ${1 + (i % 1000)}`);
  }
  for (let t = 1; t <= 4; t++) {
    lines.push(`anchor "tenant${t}" {`);
    for (let i = 0; i < perAnchor; i++) {
      lines.push(`  pass in quick on vether0.${t}0 inet proto udp from 10.${100 + t}.${(i >> 8) & 255}.${i & 255} to any port ${1024 + (i % 5000)}`);
    }
    lines.push('}');
  }
  return `${lines.join('\n')}\n`;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function time(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

interface Row {
  rules: number;
  kernelRules: number;
  encodeMs: number;
  planMs: number;
  simRunMs: number;
  textMs: number;
  planOverText: number;
  encodeUsPerRule: number;
  kernelBytes: number;
  textBytes: number;
}

const rows: Row[] = [];
for (const n of sizes) {
  const ir: Ir = compilePf({ units: [{ file: `bench-${n}.pf.conf`, text: policyText(n), ruleset: '' }] });
  const enc: number[] = [];
  const plan: number[] = [];
  const run: number[] = [];
  const text: number[] = [];
  let kernelRules = 0;
  let kernelBytes = 0;
  let textBytes = 0;
  for (let r = 0; r < reps; r++) {
    enc.push(time(() => {
      kernelRules = [...encodeIr(ir, { release: R }).byAnchor.values()].reduce((a, l) => a + l.length, 0);
    }));
    let p: ReturnType<typeof planLoad> | undefined;
    plan.push(time(() => {
      p = planLoad(ir, { release: R });
    }));
    kernelBytes = [p!.begin, ...p!.steps].reduce((a, s) => a + s.arg.length + (s.payload?.buf.length ?? 0), 0);
    run.push(time(() => {
      executePlan(p!, new SimulatedPfDevice(R));
    }));
    text.push(time(() => {
      const b = renderPfText(ir);
      textBytes = b.commands.reduce((a, c) => a + c.stdin.length, 0);
    }));
  }
  const row: Row = {
    rules: ir.rules.length,
    kernelRules,
    encodeMs: median(enc),
    planMs: median(plan),
    simRunMs: median(run),
    textMs: median(text),
    planOverText: median(plan) / median(text),
    encodeUsPerRule: (median(enc) * 1000) / kernelRules,
    kernelBytes,
    textBytes,
  };
  rows.push(row);
}

console.log(`pf backend bench: ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), load ${loadavg().map((x) => x.toFixed(2)).join(' ')}, ${reps} reps, medians`);
console.log('IR rules | kernel rules | encode ms (µs/rule) | plan ms | sim run ms | text ms | plan/text | bytes to kernel | pf.conf bytes');
for (const r of rows) {
  console.log(
    `${r.rules} | ${r.kernelRules} | ${r.encodeMs.toFixed(2)} (${r.encodeUsPerRule.toFixed(2)}) | ${r.planMs.toFixed(2)} | ${r.simRunMs.toFixed(2)} | ${r.textMs.toFixed(2)} | ${r.planOverText.toFixed(2)} | ${r.kernelBytes} | ${r.textBytes}`,
  );
}
if (jsonOut) writeFileSync(jsonOut, `${JSON.stringify({ reps, cpus: cpus().length, rows }, null, 2)}\n`);
