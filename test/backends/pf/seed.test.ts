// The pf backend on real compiler output: the nine reference snippets of pf-semantics §3 compiled
// from their pf.conf text and encoded (each field the table names, at its offset), and the whole
// transaction plan of every example policy: pf.conf ones against goldens in golden/
// (UPDATE_GOLDEN=1 refreshes), TOML ones structurally; each also run on the simulated kernel.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { getRelease } from '../../../src/backends/pf/abi/releases.js';
import { decodeRule } from '../../../src/backends/pf/decode.js';
import { encodeIr, type KernelRule } from '../../../src/backends/pf/encode.js';
import { executePlan, formatPlan, planLoad } from '../../../src/backends/pf/plan.js';
import { SimulatedPfDevice } from '../../../src/backends/pf/sim-device.js';
import { compilePf } from '../../../src/policy/compile.js';
import { loadPolicyFile } from '../../../src/policy/load.js';

const R = getRelease('pfvar-1.543');
const root = resolve(__dirname, '..', '..', '..');

function kernel(text: string): Map<string, KernelRule[]> {
  const ir = compilePf({ units: [{ file: 'snippet.pf.conf', text, ruleset: '' }] });
  return encodeIr(ir, { release: R }).byAnchor;
}
function only(text: string): Buffer {
  const rules = kernel(text).get('')!;
  expect(rules).toHaveLength(1);
  return rules[0]!.rule;
}
const u8 = (b: Buffer, o: number) => b.readUInt8(o);

describe('reference snippets compiled from pf.conf text', () => {
  it('int_if="{ vether0 em0 }": no rule; `on $int_if` -> two kernel rules', () => {
    const rules = kernel('int_if="{ vether0 em0 }"\npass in on $int_if inet\n').get('')!;
    expect(rules.map((k) => decodeRule(R, k.rule).ifname)).toEqual(['vether0', 'em0']);
    expect(kernel('int_if="{ vether0 em0 }"\n').get('')!).toHaveLength(0);
  });

  it('anchor "tenant1" { pass in quick on vether0.10 inet proto tcp from 10.10.10.0/24 to port 443 }', () => {
    const k = kernel('anchor "tenant1" {\n  pass in quick on vether0.10 inet proto tcp from 10.10.10.0/24 to port 443\n}\n');
    expect(k.get('')!.map((r) => [r.anchorCall, u8(r.rule, 1280)])).toEqual([['tenant1', 0]]);
    const b = k.get('tenant1')![0]!.rule;
    expect([u8(b, 1280), u8(b, 1281), u8(b, 1284), u8(b, 1288), u8(b, 1289)]).toEqual([0, 1, 1, 2, 6]);
    expect(b.subarray(248, 259).toString('latin1')).toBe('vether0.10\0');
    expect([u8(b, 40), ...b.subarray(0, 4), ...b.subarray(16, 20)]).toEqual([0, 10, 10, 10, 0, 255, 255, 255, 0]);
    expect([u8(b, 96), b.subarray(56, 88).every((x) => x === 0), u8(b, 109), b.readUInt16BE(104)]).toEqual([0, true, 2, 443]);
    expect([u8(b, 1287), u8(b, 1294), u8(b, 1295)]).toEqual([1, 0x02, 0x12]);
    expect([b.readInt32LE(1084), b.readInt32LE(1088), u8(b, 584 + 40), u8(b, 720 + 40), u8(b, 856 + 40)]).toEqual([-1, -1, 7, 7, 7]);
  });

  it('block drop in log on vether0.10 from 10.10.20.0/24', () => {
    const d = decodeRule(R, only('block drop in log on vether0.10 from 10.10.20.0/24\n'));
    expect([d.action, d.ruleFlag, d.log, d.direction, d.ifname]).toEqual([1, 0, 1, 1, 'vether0.10']);
    expect([d.src.addr, d.src.mask, d.dst.type, d.dst.addr, d.dst.mask]).toEqual(['10.10.20.0', '255.255.255.0', 'addrmask', '0.0.0.0', '0.0.0.0']);
  });

  it('pass out quick on vether0 inet proto udp from any to port 53 keep state', () => {
    const b = only('pass out quick on vether0 inet proto udp from any to port 53 keep state\n');
    expect([u8(b, 1280), u8(b, 1281), u8(b, 1284), u8(b, 1289), u8(b, 109), b.readUInt16BE(104), u8(b, 1287), u8(b, 1294), u8(b, 1295)])
      .toEqual([0, 2, 1, 17, 2, 53, 1, 0, 0]);
  });

  it('match out on egress inet from !(egress:network) to any nat-to (egress:0)', () => {
    const d = decodeRule(R, only('match out on egress inet from !(egress:network) to any nat-to (egress:0)\n'));
    expect([d.action, d.src.type, d.src.ifname, d.src.iflags, d.src.neg]).toEqual([12, 'dyniftl', 'egress', 1, 1]);
    expect([d.nat.type, d.nat.ifname, d.nat.iflags, d.nat.opts, d.nat.proxyPort]).toEqual(['dyniftl', 'egress', 8, 4, [50001, 65535]]);
  });

  it('pass in on egress inet proto tcp from any to (egress) port { 80 443 } rdr-to 192.168.30.2', () => {
    const rules = kernel('pass in on egress inet proto tcp from any to (egress) port { 80 443 } rdr-to 192.168.30.2\n').get('')!;
    expect(rules).toHaveLength(2);
    const ds = rules.map((k) => decodeRule(R, k.rule));
    expect(ds.map((d) => d.dst.port[0])).toEqual([80, 443]);
    for (const d of ds) {
      expect([d.dst.type, d.dst.ifname, d.rdr.type, d.rdr.addr, d.rdr.mask]).toEqual(['dyniftl', 'egress', 'addrmask', '192.168.30.2', '255.255.255.255']);
    }
  });

  it('match in all scrub (no-df random-id max-mss 1440)', () => {
    const d = decodeRule(R, only('match in all scrub (no-df random-id max-mss 1440)\n'));
    expect([d.action, d.direction, d.scrubFlags & 0xa0, d.maxMss]).toEqual([12, 1, 0xa0, 1440]);
  });

  it('set loginterface vether0 -> DIOCSETSTATUSIF "vether0" inside the transaction', () => {
    const ir = compilePf({ units: [{ file: 's.pf.conf', text: 'set loginterface vether0\npass\n', ruleset: '' }] });
    const plan = planLoad(ir, { release: R });
    const s = plan.steps.find((x) => x.ioctl === 'DIOCSETSTATUSIF')!;
    expect(s.arg.subarray(0, 8).toString('latin1')).toBe('vether0\0');
    const dev = new SimulatedPfDevice(R);
    executePlan(plan, dev);
    const names = dev.names();
    expect(names.indexOf('DIOCSETSTATUSIF')).toBeGreaterThan(names.indexOf('DIOCXBEGIN'));
    expect(names.indexOf('DIOCSETSTATUSIF')).toBeLessThan(names.indexOf('DIOCXCOMMIT'));
    expect(dev.statusIf).toBe('vether0');
  });

  it('pass out log on egress all keep state -> flags S/SA', () => {
    const d = decodeRule(R, only('pass out log on egress all keep state\n'));
    expect([d.action, d.direction, d.log, d.ifname, d.keepState, d.flags, d.flagset]).toEqual([0, 2, 1, 'egress', 1, 2, 0x12]);
    expect([d.src.type, d.src.mask, d.dst.type, d.dst.mask]).toEqual(['addrmask', '0.0.0.0', 'addrmask', '0.0.0.0']);
  });
});

function golden(name: string, actual: string): void {
  const path = join(__dirname, 'golden', name);
  if (process.env.UPDATE_GOLDEN === '1' || !existsSync(path)) {
    const created = !existsSync(path);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, actual);
    if (created && process.env.UPDATE_GOLDEN !== '1') throw new Error(`golden ${name} was missing and has been written; review it`);
    return;
  }
  expect(actual).toBe(readFileSync(path, 'utf8'));
}

/** The plan listing plus, per step, a digest of every argument byte and the decoded rule. */
function describePlan(plan: ReturnType<typeof planLoad>): string {
  const lines = [formatPlan(plan).trimEnd()];
  lines.push('', '# argument digests (sha256 of arg | payload) and decoded rules');
  for (const s of [plan.begin, ...plan.steps]) {
    const h = createHash('sha256').update(s.arg).update(s.payload?.buf ?? Buffer.alloc(0)).digest('hex').slice(0, 16);
    lines.push(`${s.ioctl} ${h} ${s.what}`);
    if (s.ioctl === 'DIOCADDRULE') {
      const d = decodeRule(R, s.arg, 2064);
      // Zero and empty fields are left out (array elements are kept so positions stay readable).
      const compact = JSON.stringify(d, function (this: unknown, _k: string, v: unknown) {
        return !Array.isArray(this) && (v === 0 || v === '') ? undefined : v;
      });
      lines.push(`  ${compact}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

describe('transaction plans of the example policies', () => {
  const files = readdirSync(join(root, 'examples')).filter((f) => f.endsWith('.pf.conf') || f.endsWith('.toml')).sort();
  it('finds the examples', () => {
    expect(files).toContain('vmm-gateway.pf.conf');
    expect(files.some((f) => f.endsWith('.toml'))).toBe(true);
  });
  for (const f of files) {
    it(f, () => {
      const ir = loadPolicyFile(join(root, 'examples', f));
      const plan = planLoad(ir, { release: R });
      // The seed pf.conf files are fixed inputs and get byte goldens; the TOML examples' pf is
      // generated by the policy layer and evolves with it, so they are checked structurally.
      if (f.endsWith('.pf.conf')) golden(`${f}.plan.txt`, describePlan(plan));
      else {
        const adds = plan.steps.filter((s) => s.ioctl === 'DIOCADDRULE');
        expect(adds.map((s) => s.irId!).sort((a, b) => a - b)).toEqual(ir.rules.map((r) => r.id));
        expect(plan.steps.filter((s) => s.ioctl === 'DIOCRINADEFINE')).toHaveLength(Object.keys(ir.tables).length);
        expect(plan.elements.filter((e) => e.type === 'ruleset').map((e) => e.anchor)).toEqual(
          Object.keys(ir.rulesets).sort((a, b) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : 1)),
        );
      }
      const dev = new SimulatedPfDevice(R);
      expect(executePlan(plan, dev).committed).toBe(true);
      for (const [anchor, rules] of plan.kernelRules) expect(dev.rulesets.get(anchor)!.active.length).toBe(rules.length);
    });
  }
});
