// The /dev/pf transaction planner and executor against the simulated kernel: step order and
// tickets (pf-semantics §4), rollback on every failure path, dry runs that change nothing,
// tenant-only loads, and counter reads that restart on EBUSY and always end their cursor.
import { describe, expect, it } from 'vitest';
import { getRelease, PF } from '../../../src/backends/pf/abi/releases.js';
import { StructView } from '../../../src/backends/pf/abi/layout.js';
import { decodeRule } from '../../../src/backends/pf/decode.js';
import { BackendError, PfIoctlError } from '../../../src/backends/pf/errors.js';
import { executePlan, formatPlan, planLoad, readAnchorCounters, readCounters, type IoctlDevice } from '../../../src/backends/pf/plan.js';
import { SimulatedPfDevice } from '../../../src/backends/pf/sim-device.js';
import { decodeRuleCounters } from '../../../src/backends/pf/ioctl-args.js';
import type { Ir } from '../../../src/policy/ir.js';
import { net, policy, SA } from './fixtures.js';

const R = getRelease('pfvar-1.543');

/** The seed vmm-gateway.pf.conf + zerotrust anchor snippet, as the compiler expands it. */
function seedIr(): Ir {
  const egress = { name: 'egress', neg: false };
  const rdr = (port: number) => ({ action: 'pass' as const, dir: 'in' as const, iface: egress, af: 'inet' as const, proto: 6,
    dst: { neg: false, host: { type: 'dynif' as const, ifname: 'egress', mode: 'address' as const } },
    dstPort: { op: '=' as const, lo: port, hi: port }, state: 'keep' as const, flags: SA,
    rdrTo: { hosts: [{ type: 'prefix' as const, prefix: { af: 'inet' as const, addr: '192.168.30.2', len: 32 } }] } });
  return policy({
    '': [
      { action: 'match', dir: 'in', scrub: { noDf: true, randomId: true, maxMss: 1440 } },
      { action: 'match', dir: 'out', iface: egress, af: 'inet', src: { neg: true, host: { type: 'dynif', ifname: 'egress', mode: 'network' } },
        natTo: { hosts: [{ type: 'dynif', ifname: 'egress', mode: 'primary' }] } },
      { action: 'pass', dir: 'out', quick: true, af: 'inet', state: 'keep', flags: SA },
      { action: 'pass', dir: 'in', iface: { name: 'vether0', neg: false }, af: 'inet', state: 'keep', flags: SA },
      { action: 'pass', dir: 'in', iface: { name: 'em0', neg: false }, af: 'inet', state: 'keep', flags: SA },
      rdr(80),
      rdr(443),
      { action: 'anchor', call: { name: 'tenant1', wildcard: false, targets: ['tenant1'] } },
    ],
    tenant1: [
      { action: 'pass', dir: 'in', quick: true, iface: { name: 'vether0.10', neg: false }, proto: 6, dstPort: { op: '=', lo: 443, hi: 443 }, state: 'keep', flags: SA },
    ],
  }, {
    skip: ['lo0'],
    loginterface: 'egress',
    tables: [{ name: 'trusted', entries: [{ neg: false, prefix: { af: 'inet', addr: '192.168.1.0', len: 24 } }, { neg: true, prefix: { af: 'inet', addr: '192.168.1.66', len: 32 } }], persist: true, constant: false, pos: { file: 'test.pf.conf', line: 1, col: 1 } }],
  });
}

describe('planLoad', () => {
  it('plans the seed pf.conf as BEGIN, tables, rules per ruleset, staged options, COMMIT', () => {
    const plan = planLoad(seedIr(), { release: R });
    expect(plan.elements).toEqual([
      { type: 'ruleset', anchor: '' },
      { type: 'ruleset', anchor: 'tenant1' },
      { type: 'table', anchor: '' },
      { type: 'table', anchor: 'tenant1' },
    ]);
    expect([plan.begin.ioctl, ...plan.steps.map((s) => s.ioctl), plan.commit.ioctl]).toEqual([
      'DIOCXBEGIN',
      'DIOCRINADEFINE',
      ...Array(8).fill('DIOCADDRULE'),
      'DIOCADDRULE',
      'DIOCCLRIFFLAG',
      'DIOCSETIFFLAG',
      'DIOCSETSTATUSIF',
      'DIOCXCOMMIT',
    ]);
    expect(plan.begin.request).toBe(0xc0104451);
    const adds = plan.steps.filter((s) => s.ioctl === 'DIOCADDRULE');
    expect(adds.every((s) => s.request === 0xcd504404)).toBe(true);
    expect(adds.map((s) => s.ticket!.element)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 1]);
    expect(adds.map((s) => s.irId)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    // anchor rule: pfioc_rule.anchor "" and anchor_call "tenant1"; tenant rule: anchor "tenant1"
    const anchorRule = new StructView(R.structs.pfioc_rule, adds[7]!.arg);
    expect([anchorRule.string('anchor'), anchorRule.string('anchor_call'), anchorRule.u8('rule.action')]).toEqual(['', 'tenant1', 0]);
    const t1 = new StructView(R.structs.pfioc_rule, adds[8]!.arg);
    expect([t1.string('anchor'), t1.string('anchor_call'), t1.u8('rule.quick')]).toEqual(['tenant1', '', 1]);
    // table: ticket of the "" table element, ADDRSTOO, persist flag, two pfr_addr of 52 bytes
    const tbl = plan.steps[0]!;
    expect(tbl.ticket!.element).toBe(2);
    const tv = new StructView(R.structs.pfioc_table, tbl.arg);
    expect([tv.string('pfrio_table.pfrt_name'), tv.u32('pfrio_table.pfrt_flags'), tv.i32('pfrio_flags'), tv.i32('pfrio_esize'), tv.i32('pfrio_size')])
      .toEqual(['trusted', PF.tflag.persist, PF.rflag.addrsToo, 52, 2]);
    expect(tbl.payload!.buf.length).toBe(104);
    expect([...tbl.payload!.buf.subarray(52, 56)]).toEqual([192, 168, 1, 66]);
    expect([tbl.payload!.buf[52 + 38], tbl.payload!.buf[52 + 39], tbl.payload!.buf[52 + 40]]).toEqual([2, 32, 1]);
    // options
    const statusIf = new StructView(R.structs.pfioc_iface, plan.steps.at(-1)!.arg);
    expect(statusIf.string('pfiio_name')).toBe('egress');
    const skip = new StructView(R.structs.pfioc_iface, plan.steps.at(-2)!.arg);
    expect([skip.string('pfiio_name'), skip.i32('pfiio_flags')]).toEqual(['lo0', 0x100]);
    expect(formatPlan(plan)).toContain('DIOCADDRULE 0xCD504404  rule 7 of "" (IR 7) -> anchor "tenant1"  [ticket of element 0]');
  });

  it('warns about anchor names pflog would truncate, and refuses paths pf cannot hold', () => {
    expect(planLoad(seedIr(), { release: R }).warnings).toEqual([]);
    const long = policy({ '': [{ action: 'anchor', call: { name: 'tenant-with-long-name', wildcard: false, targets: ['tenant-with-long-name'] } }], 'tenant-with-long-name': [{ action: 'pass' }] });
    expect(planLoad(long, { release: R }).warnings).toEqual([
      'anchor "tenant-with-long-name": its name is longer than 15 bytes and pflog records it truncated',
    ]);
    const twins = policy({ '': [], 'a/web': [{ action: 'pass' }], 'b/web': [{ action: 'pass' }] });
    expect(planLoad(twins, { release: R, anchorRoot: 'ztb' }).warnings).toEqual([
      'anchors "ztb/a/web", "ztb/b/web" all appear as "web" in pflog; log lines cannot tell them apart',
    ]);
    const deep = 'a'.repeat(1030);
    const tooLong = policy({ '': [{ action: 'anchor', call: { name: deep, wildcard: false, targets: [deep] } }], [deep]: [{ action: 'pass' }] });
    expect(() => planLoad(tooLong, { release: R })).toThrow(BackendError);
    expect(() => planLoad(seedIr(), { release: R, anchorRoot: '_pf' })).toThrow(/anchor root "_pf" is not a valid pf anchor path/);
    expect(() => planLoad(seedIr(), { release: R, anchorRoot: 'a//b' })).toThrow(BackendError);
  });

  it('stages DIOCSETSTATUSIF only for a named interface (an empty name acts at once in pf)', () => {
    const none = planLoad(policy({ '': [{ action: 'pass' }] }), { release: R });
    expect(none.steps.map((s) => s.ioctl)).toEqual(['DIOCADDRULE', 'DIOCCLRIFFLAG']);
    const dev = new SimulatedPfDevice(R);
    executePlan(planLoad(policy({ '': [] }, { loginterface: 'em0' }), { release: R }), dev);
    expect(dev.statusIf).toBe('em0');
    executePlan(none, dev, { dryRun: true });
    expect(dev.statusIf).toBe('em0');
  });

  it('a tenant-only plan touches only that tenant\'s anchors and no global options', () => {
    const plan = planLoad(seedIr(), { release: R, scope: { kind: 'tenant', anchor: 'tenant1' } });
    expect(plan.elements).toEqual([{ type: 'ruleset', anchor: 'tenant1' }, { type: 'table', anchor: 'tenant1' }]);
    expect(plan.steps.map((s) => s.ioctl)).toEqual(['DIOCADDRULE']);
    expect(() => planLoad(seedIr(), { release: R, scope: { kind: 'tenant', anchor: 'nope' } })).toThrow(BackendError);
    expect(() => planLoad(seedIr(), { release: R, scope: { kind: 'tenant', anchor: '' } })).toThrow(/tenant anchor/);
  });
});

describe('executePlan on the simulated kernel', () => {
  it('commits: tickets from BEGIN reach every step, rulesets and staged options swap in', () => {
    const dev = new SimulatedPfDevice(R);
    const plan = planLoad(seedIr(), { release: R });
    const res = executePlan(plan, dev);
    expect(res.committed).toBe(true);
    expect(res.tickets).toHaveLength(4);
    expect(new Set(res.tickets).size).toBe(4);
    const addCalls = dev.calls.filter((c) => c.ioctl === 'DIOCADDRULE');
    expect(addCalls.map((c) => c.ticket)).toEqual([...Array(8).fill(res.tickets[0]), res.tickets[1]]);
    expect(dev.calls.find((c) => c.ioctl === 'DIOCRINADEFINE')!.ticket).toBe(res.tickets[2]);
    expect(dev.rulesets.get('')!.active).toHaveLength(8);
    expect(dev.rulesets.get('tenant1')!.active).toHaveLength(1);
    expect(decodeRule(R, dev.rulesets.get('tenant1')!.active[0]!).ifname).toBe('vether0.10');
    expect(dev.tables.get('')!.active.get('trusted')).toEqual({ entries: 2, flags: 1 });
    expect(dev.statusIf).toBe('egress');
    expect([...dev.skip]).toEqual(['lo0']);
    expect(dev.names().at(-1)).toBe('DIOCXCOMMIT');
  });

  it('dry run: the kernel sees every rule and table, then ROLLBACK; nothing changes', () => {
    const dev = new SimulatedPfDevice(R);
    const res = executePlan(planLoad(seedIr(), { release: R }), dev, { dryRun: true });
    expect(res.committed).toBe(false);
    expect(dev.names()).toEqual(['DIOCXBEGIN', 'DIOCRINADEFINE', ...Array(9).fill('DIOCADDRULE'), 'DIOCXROLLBACK']);
    expect(dev.rulesets.get('')!.active).toHaveLength(0);
    expect(dev.rulesets.get('')!.inactive).toBeNull();
    expect(dev.statusIf).toBe('');
    expect(dev.skip.size).toBe(0);
    // pf keeps staged interface options across a rollback: had the dry run sent them, the next
    // commit by anyone (here a tenant-only load, which stages none) would have applied them.
    executePlan(planLoad(seedIr(), { release: R, scope: { kind: 'tenant', anchor: 'tenant1' } }), dev);
    expect([dev.statusIf, dev.skip.size]).toEqual(['', 0]);
  });

  it('EINVAL on a rule rolls back with the same array and reports the request', () => {
    const dev = new SimulatedPfDevice(R);
    executePlan(planLoad(policy({ '': [{ action: 'block', blockPolicy: 'drop' }] }), { release: R }), dev);
    dev.failOn('DIOCADDRULE', 'EINVAL', 3);
    const before = dev.calls.length;
    let err: unknown;
    try {
      executePlan(planLoad(seedIr(), { release: R }), dev);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PfIoctlError);
    expect(err).toMatchObject({ errno: 'EINVAL', request: 'DIOCADDRULE', code: 'ERR_ZTB_PF_IOCTL' });
    expect((err as Error).message).toBe('pf ioctl DIOCADDRULE failed: EINVAL (rule 2 of "" (IR 2))');
    expect(dev.names().slice(before)).toEqual(['DIOCXBEGIN', 'DIOCRINADEFINE', 'DIOCADDRULE', 'DIOCADDRULE', 'DIOCADDRULE', 'DIOCXROLLBACK']);
    // the old policy is still the active one
    expect(dev.rulesets.get('')!.active.map((b) => decodeRule(R, b).action)).toEqual([PF.action.drop]);
    expect(dev.rulesets.get('')!.inactive).toBeNull();
  });

  it('a rule the kernel rejects is EINVAL from the simulated field checks, not only from injection', () => {
    const dev = new SimulatedPfDevice(R);
    const plan = planLoad(policy({ '': [{ action: 'pass', proto: 6, af: 'inet', dstPort: { op: '=', lo: 22, hi: 22 } }] }), { release: R });
    plan.steps[0]!.arg.writeUInt8(0, 2064 + 1289); // ports without a protocol
    expect(() => executePlan(plan, dev)).toThrow(/DIOCADDRULE failed: EINVAL/);
    expect(dev.names().at(-1)).toBe('DIOCXROLLBACK');
  });

  it('a concurrent transaction makes our tickets stale: EBUSY, rollback, nothing swapped', () => {
    const sim = new SimulatedPfDevice(R);
    let raced = false;
    const racing: IoctlDevice = {
      ioctl(req, arg, payload) {
        sim.ioctl(req, arg, payload);
        if (!raced && req === R.ioctls.DIOCADDRULE.request) {
          raced = true;
          const other = planLoad(policy({ '': [{ action: 'pass' }] }), { release: R });
          sim.ioctl(other.begin.request, other.begin.arg, other.begin.payload); // another pfctl opens "" and keeps it
        }
      },
    };
    expect(() => executePlan(planLoad(seedIr(), { release: R }), racing)).toThrow(expect.objectContaining({ errno: 'EBUSY', request: 'DIOCADDRULE' }));
    expect(sim.names().at(-1)).toBe('DIOCXROLLBACK');
    expect(sim.rulesets.get('')!.active).toHaveLength(0);
  });

  it('EBUSY on commit (stale ticket) rolls back', () => {
    const dev = new SimulatedPfDevice(R).failOn('DIOCXCOMMIT', 'EBUSY');
    expect(() => executePlan(planLoad(seedIr(), { release: R }), dev)).toThrow(expect.objectContaining({ errno: 'EBUSY', request: 'DIOCXCOMMIT' }));
    expect(dev.names().slice(-2)).toEqual(['DIOCXCOMMIT', 'DIOCXROLLBACK']);
    expect(dev.rulesets.get('')!.active).toHaveLength(0);
  });

  it('a plan built for another release is refused by the request numbers it embeds', () => {
    const dev = new SimulatedPfDevice(R);
    const plan = planLoad(seedIr(), { release: getRelease('pfvar-1.548') });
    expect(() => executePlan(plan, dev)).toThrow(expect.objectContaining({ errno: 'ENOTTY', request: 'DIOCADDRULE' }));
    expect(dev.names().at(-1)).toBe('DIOCXROLLBACK');
  });

  it('a wrong element size is ENODEV before anything opens', () => {
    const dev = new SimulatedPfDevice(R);
    const plan = planLoad(seedIr(), { release: R });
    plan.begin.arg.writeInt32LE(1024, 4);
    expect(() => executePlan(plan, dev)).toThrow(expect.objectContaining({ errno: 'ENODEV', request: 'DIOCXBEGIN' }));
    expect(dev.names()).toEqual(['DIOCXBEGIN']);
  });
});

describe('counters', () => {
  it('decodes the pf_rule counters at their r1.543 offsets inside pfioc_rule (rule @2064)', () => {
    const b = Buffer.alloc(R.structs.pfioc_rule.size);
    b.writeBigUInt64LE(11n, 2064 + 1008);
    b.writeBigUInt64LE(12n, 2064 + 1016);
    b.writeBigUInt64LE(13n, 2064 + 1024);
    b.writeBigUInt64LE(14n, 2064 + 1032);
    b.writeBigUInt64LE(15n, 2064 + 1040);
    b.writeUInt32LE(16, 2064 + 1172);
    expect(decodeRuleCounters(R, b)).toEqual({ evaluations: 11n, packets: [12n, 13n], bytes: [14n, 15n], statesCur: 16 });
  });

  function loaded(): { dev: SimulatedPfDevice; plan: ReturnType<typeof planLoad> } {
    const dev = new SimulatedPfDevice(R);
    const ir = policy({
      '': [
        { action: 'pass', dst: { neg: false, host: { type: 'ifaddr', ifname: 'em0' } } },
        { action: 'block', blockPolicy: 'drop', src: net('10.0.0.0/8') },
      ],
      tenant1: [{ action: 'pass', quick: true }],
    });
    const plan = planLoad(ir, { release: R, addressMap: { em0: ['192.0.2.1/24', '192.0.2.2/24'] } });
    executePlan(plan, dev);
    return { dev, plan };
  }

  it('reads evaluations@1008, packets@1016, bytes@1032, states_cur@1172 and sums expanded rules per IR rule', () => {
    const { dev, plan } = loaded();
    expect(dev.rulesets.get('')!.active).toHaveLength(3);
    dev.setCounters('', 0, { evaluations: 10n, packets: [1n, 2n], bytes: [100n, 200n], statesCur: 1 });
    dev.setCounters('', 1, { evaluations: 5n, packets: [3n, 4n], bytes: [300n, 400n], statesCur: 2 });
    dev.setCounters('', 2, { evaluations: 7n, packets: [0n, 0n], bytes: [0n, 0n], statesCur: 0 });
    dev.setCounters('tenant1', 0, { evaluations: 2n, packets: [9n, 9n], bytes: [9n, 9n], statesCur: 0 });
    const c = readCounters(plan, dev);
    expect(c.get(0)).toEqual({ evaluations: 15n, packets: [4n, 6n], bytes: [400n, 600n], statesCur: 3, kernelRules: 2 });
    expect(c.get(1)).toMatchObject({ evaluations: 7n, kernelRules: 1 });
    expect(c.get(2)).toMatchObject({ evaluations: 2n, packets: [9n, 9n] });
    // one cursor per anchor, each ended
    expect(dev.names().filter((n) => n === 'DIOCGETRULES').length).toBe(2);
    expect(dev.names().filter((n) => n === 'DIOCXEND').length).toBe(2);
    expect(dev.cursors.size).toBe(0);
  });

  it('PF_GET_CLR_CNTR zeroes while reading', () => {
    const { dev } = loaded();
    dev.setCounters('tenant1', 0, { evaluations: 4n, packets: [1n, 1n], bytes: [1n, 1n], statesCur: 1 });
    expect(readAnchorCounters(R, dev, 'tenant1', { clear: true }).counters[0]!.evaluations).toBe(4n);
    expect(readAnchorCounters(R, dev, 'tenant1').counters[0]).toEqual({ evaluations: 0n, packets: [0n, 0n], bytes: [0n, 0n], statesCur: 1 });
  });

  it('EBUSY mid-read restarts from DIOCGETRULES and still ends every cursor', () => {
    const { dev } = loaded();
    let bumped = 0;
    dev.onGetRule = (anchor, nr) => {
      if (anchor === '' && nr === 1 && bumped++ === 0) dev.replaceActive('', dev.rulesets.get('')!.active);
    };
    const res = readAnchorCounters(R, dev, '');
    expect(res.counters).toHaveLength(3);
    expect(res.rules.map((r) => r.action)).toEqual([0, 0, 1]);
    const seq = dev.calls.filter((c) => c.ioctl !== 'DIOCADDRULE').map((c) => `${c.ioctl}${c.errno ? `:${c.errno}` : ''}`);
    expect(seq.slice(-9)).toEqual([
      'DIOCGETRULES', 'DIOCGETRULE', 'DIOCGETRULE:EBUSY', 'DIOCXEND',
      'DIOCGETRULES', 'DIOCGETRULE', 'DIOCGETRULE', 'DIOCGETRULE', 'DIOCXEND',
    ]);
    expect(dev.cursors.size).toBe(0);
  });

  it('gives up after maxRestarts with EBUSY, cursors still ended', () => {
    const { dev } = loaded();
    dev.onGetRule = () => dev.replaceActive('', dev.rulesets.get('')!.active);
    expect(() => readAnchorCounters(R, dev, '', { maxRestarts: 2 })).toThrow(expect.objectContaining({ errno: 'EBUSY' }));
    expect(dev.names().filter((n) => n === 'DIOCGETRULES').length).toBe(3);
    expect(dev.cursors.size).toBe(0);
  });

  it('an unexpected error mid-read still ends the cursor', () => {
    const { dev } = loaded();
    dev.failOn('DIOCGETRULE', 'EIO', 2);
    expect(() => readAnchorCounters(R, dev, '')).toThrow(expect.objectContaining({ errno: 'EIO', request: 'DIOCGETRULE' }));
    expect(dev.names().at(-1)).toBe('DIOCXEND');
    expect(dev.cursors.size).toBe(0);
  });

  it('an anchor replaced behind our back is reported, not mis-mapped', () => {
    const { dev, plan } = loaded();
    dev.replaceActive('tenant1', []);
    expect(() => readCounters(plan, dev)).toThrow(/anchor "tenant1" holds 0 rules, we loaded 1/);
  });
});
