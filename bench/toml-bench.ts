// Bench (policy, TOML): the cost of loading a TOML policy document of N tenants (each with two
// workloads and a line of pf rules, isolation on) — smol-toml's parse alone (the floor), our load
// (parse + positions + schema + cross-checks + generated pf text), the pf compile of what it
// generates, and, side by side, compiling the same pf text written as one pf.conf (what the
// generated text costs to compile without the TOML layer). Medians over repetitions and ratios to
// the bare parse. It asserts nothing. Run with
// `node bench/toml-bench.mjs [--sizes 10,100,1000,3000] [--reps 11] [--json FILE]`.
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parse } from 'smol-toml';
import { compilePf } from '../src/policy/compile.js';
import { loadTomlPolicy } from '../src/policy/toml.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : def;
}

const sizes = arg('sizes', '10,100,1000,3000').split(',').map(Number);
const reps = Number(arg('reps', '11'));
const jsonOut = arg('json', '');

function documentText(n: number): string {
  const parts = [
    '[isolation]\ncluster_networks = ["172.16.0.0/12"]\nallow_internet = true\nallowed_ports = [{ protocol = "udp", port = 53 }]\n',
  ];
  for (let i = 0; i < n; i++) {
    const a = 10 + (i >> 8);
    const b = i & 255;
    parts.push(
      `[[tenants]]\nid = "t${i}"\nnet_id = ${i + 1}\nsubnets = ["${a}.${b}.0.0/24"]\ngateway = "${a}.${b}.0.1"\n` +
        `rules = '''\npass in on ztbr${i + 1} proto tcp to port 443\n'''\n`,
    );
    for (let w = 0; w < 2; w++) parts.push(`[[tenants.workloads]]\nname = "w${w}"\nip = "${a}.${b}.0.${w + 10}"\n`);
  }
  return parts.join('');
}

/** Runs the stages round-robin (stage 1, 2, 3, 4, then again) so a burst of load on this shared
 *  machine hits every stage alike; returns each stage's median. */
function medians(stages: (() => unknown)[]): number[] {
  const t: number[][] = stages.map(() => []);
  // Two untimed rounds first: the first sizes would otherwise pay for the JIT.
  for (let k = 0; k < 2; k++) for (const f of stages) f();
  for (let k = 0; k < reps; k++) {
    stages.forEach((f, i) => {
      const t0 = performance.now();
      f();
      t[i]!.push(performance.now() - t0);
    });
  }
  return t.map((xs) => xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)]!);
}

const rows = [];
console.log(`toml bench: ${cpus().length} CPUs, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}, ${reps} reps, medians in ms`);
console.log('tenants  doc KiB  rules   parse    load  compile  total  pf.conf-only  load/parse  total/pf.conf');
for (const n of sizes) {
  const text = documentText(n);
  const loaded = loadTomlPolicy(text, 'bench.toml');
  const ir = compilePf(loaded.input);
  // The same pf text as one pf.conf (tenant bodies as inline anchors would change nothing here).
  const pfText = loaded.input.units.filter((u) => u.ruleset === '').map((u) => u.text).join('');
  const anchors = loaded.input.units.filter((u) => u.ruleset !== '');
  const pfUnits = [{ file: 'bench.pf.conf', text: pfText, ruleset: '' }, ...anchors.map((u) => ({ file: 'bench.pf.conf', text: u.text, ruleset: u.ruleset }))];
  const [tParse, tLoad, tCompile, tPf] = medians([
    () => parse(text, { integersAsBigInt: true }),
    () => loadTomlPolicy(text, 'bench.toml'),
    () => compilePf(loaded.input),
    () => compilePf({ units: pfUnits, tenants: loaded.input.tenants, groups: loaded.input.groups }),
  ]) as [number, number, number, number];
  const row = {
    tenants: n,
    docBytes: text.length,
    rules: ir.rules.length,
    parseMs: tParse,
    loadMs: tLoad,
    compileMs: tCompile,
    totalMs: tLoad + tCompile,
    pfConfOnlyMs: tPf,
    loadOverParse: tLoad / tParse,
    totalOverPfConf: (tLoad + tCompile) / tPf,
  };
  rows.push(row);
  console.log(
    [
      String(n).padStart(7),
      (text.length / 1024).toFixed(0).padStart(8),
      String(ir.rules.length).padStart(6),
      tParse.toFixed(1).padStart(7),
      tLoad.toFixed(1).padStart(7),
      tCompile.toFixed(1).padStart(8),
      (tLoad + tCompile).toFixed(1).padStart(6),
      tPf.toFixed(1).padStart(13),
      row.loadOverParse.toFixed(2).padStart(11),
      row.totalOverPfConf.toFixed(2).padStart(14),
    ].join(' '),
  );
}
if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ when: new Date().toISOString(), loadavg: loadavg(), reps, rows }, null, 2));
