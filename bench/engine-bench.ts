// Bench (engine): packets per second of the native engine's batch API over synthetic pf rulesets
// of N rules (prefix/port/proto/interface mixes, `no state` so every packet walks the rules), side
// by side: the reference evaluator (the oracle, TypeScript), the native slow twin (linear walk of
// the flattened program) and the native engine on the fast classifier, each through
// processHeaders in batches of 1024, plus processFrames (parsing included) for the fast engine.
// Medians over repetitions and ratios to the slow twin, in one run (the machine is shared: compare
// ratios, not absolute figures). It asserts nothing. Run with
// `node bench/engine-bench.mjs [--sizes 10,100,1000,10000] [--reps 7] [--json FILE]`.
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { allocOutputs, HEADER_WORDS, NativeEngine } from '../src/engine/engine.js';
import type { EvalPacket } from '../src/engine/packet.js';
import { ReferenceEvaluator } from '../src/engine/reference.js';
import { compilePolicyText } from '../src/policy/load.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : def;
}
const sizes = arg('sizes', '10,100,1000,10000').split(',').map(Number);
const reps = Number(arg('reps', '7'));
const jsonOut = arg('json', '');
const BATCH = 1024;

let s = 12345;
const rnd = (n: number): number => {
  s = (Math.imul(s, 1103515245) + 12345) >>> 0;
  return s % n;
};

function policy(n: number): string {
  const lines = ['block all'];
  for (let i = 0; i < n; i++) {
    const act = rnd(3) === 0 ? 'block' : 'pass';
    const quick = rnd(4) === 0 ? ' quick' : '';
    const iface = rnd(2) === 0 ? ` on em${rnd(4)}` : '';
    const proto = rnd(2) === 0 ? 'tcp' : 'udp';
    const src = `10.${rnd(256)}.${rnd(256)}.0/24`;
    const port = rnd(3) === 0 ? `${1000 + rnd(1000)}:${2000 + rnd(1000)}` : String(1 + rnd(1024));
    lines.push(`${act} in${quick}${iface} inet proto ${proto} from ${src} to any port ${port}${act === 'pass' ? ' no state' : ''}`);
  }
  return lines.join('\n') + '\n';
}

function packets(n: number): EvalPacket[] {
  const out: EvalPacket[] = [];
  for (let i = 0; i < n; i++) {
    out.push({
      dir: 'in',
      ifname: `em${rnd(4)}`,
      af: 'inet',
      proto: rnd(2) === 0 ? 6 : 17,
      src: `10.${rnd(256)}.${rnd(256)}.${1 + rnd(254)}`,
      dst: '192.0.2.1',
      sport: 1024 + rnd(60000),
      dport: 1 + rnd(3000),
      tcpFlags: 0x02,
    });
  }
  return out;
}

function frame(p: EvalPacket): number[] {
  const a = p.src.split('.').map(Number);
  const l4 = p.proto === 6 ? 20 : 8;
  const f = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0, 0x45, 0, 0, 20 + l4, 0, 1, 0, 0, 64, p.proto, 0, 0, ...a, 192, 0, 2, 1];
  f.push(p.sport >> 8, p.sport & 255, p.dport >> 8, p.dport & 255);
  if (p.proto === 6) f.push(0, 0, 0, 1, 0, 0, 0, 0, 0x50, p.tcpFlags, 4, 0, 0, 0, 0, 0);
  else f.push(0, 8, 0, 0);
  return f;
}

function median(xs: number[]): number {
  const a = [...xs].sort((x, y) => x - y);
  return a[Math.floor(a.length / 2)]!;
}

interface Row {
  rules: number;
  entries: number;
  referencePps: number;
  linearPps: number;
  classifierPps: number;
  framesPps: number;
  /** Classifier engine with countEvaluations (headers). */
  evaluationsPps: number;
}
const rows: Row[] = [];
console.log(`engine bench: batch ${BATCH}, ${reps} reps, load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
for (const n of sizes) {
  const ir = compilePolicyText(policy(n), `bench-${n}.pf.conf`);
  const pk = packets(BATCH * 8);
  const ids = { em0: 1, em1: 2, em2: 3, em3: 4 };
  const engines = [new NativeEngine({ linearWalk: true }), new NativeEngine(), new NativeEngine({ countEvaluations: true })];
  let entries = 0;
  for (const e of engines) entries = e.load(ir, { ifindex: ids }).nEntries;
  const headers = new Uint32Array(pk.length * HEADER_WORDS);
  pk.forEach((p, i) => engines[0]!.encodeHeader(p, headers, i));
  const out = allocOutputs(BATCH);
  const timeHeaders = (e: NativeEngine): number => {
    const t0 = process.hrtime.bigint();
    for (let o = 0; o < pk.length; o += BATCH) e.processHeaders(headers.subarray(o * HEADER_WORDS, (o + BATCH) * HEADER_WORDS), 0, out);
    return pk.length / (Number(process.hrtime.bigint() - t0) / 1e9);
  };
  const frames = pk.map(frame);
  const total = frames.reduce((a, f) => a + f.length, 0);
  const buf = new Uint8Array(total);
  const offsets = new Uint32Array(pk.length);
  const lengths = new Uint32Array(pk.length);
  let off = 0;
  frames.forEach((f, i) => {
    buf.set(f, off);
    offsets[i] = off;
    lengths[i] = f.length;
    off += f.length;
  });
  const ifx = new Uint32Array(pk.map((p) => ids[p.ifname as keyof typeof ids]));
  const dir = new Uint8Array(pk.length);
  const timeFrames = (e: NativeEngine): number => {
    const t0 = process.hrtime.bigint();
    for (let o = 0; o < pk.length; o += BATCH) {
      e.processFrames(buf, offsets.subarray(o, o + BATCH), lengths.subarray(o, o + BATCH), ifx.subarray(o, o + BATCH), dir.subarray(o, o + BATCH), 0, out);
    }
    return pk.length / (Number(process.hrtime.bigint() - t0) / 1e9);
  };
  const ref = new ReferenceEvaluator(ir, { clock: () => 0 });
  const refN = Math.min(pk.length, Math.max(200, Math.floor(200_000 / (n + 1))));
  const timeRef = (): number => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < refN; i++) ref.evaluate(pk[i]!);
    return refN / (Number(process.hrtime.bigint() - t0) / 1e9);
  };
  const r: number[] = [], l: number[] = [], c: number[] = [], f: number[] = [], ev: number[] = [];
  for (let k = 0; k < reps; k++) {
    r.push(timeRef());
    l.push(timeHeaders(engines[0]!));
    c.push(timeHeaders(engines[1]!));
    f.push(timeFrames(engines[1]!));
    ev.push(timeHeaders(engines[2]!));
  }
  const row = { rules: n, entries, referencePps: median(r), linearPps: median(l), classifierPps: median(c), framesPps: median(f), evaluationsPps: median(ev) };
  rows.push(row);
  const fmt = (x: number): string => (x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : `${(x / 1e3).toFixed(1)}k`);
  console.log(
    `${String(n).padStart(6)} rules: reference ${fmt(row.referencePps)}/s  linear ${fmt(row.linearPps)}/s  ` +
      `classifier ${fmt(row.classifierPps)}/s (${(row.classifierPps / row.linearPps).toFixed(1)}x linear, ` +
      `${(row.classifierPps / row.referencePps).toFixed(0)}x reference)  frames ${fmt(row.framesPps)}/s  ` +
      `countEvaluations ${fmt(row.evaluationsPps)}/s (${(row.evaluationsPps / row.classifierPps).toFixed(2)}x classifier)`,
  );
  for (const e of engines) e.close();
}
if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ batch: BATCH, reps, rows }, null, 2));
