// applyPf: the entry point the CLI calls. Off OpenBSD it refuses a real load with a clear
// BackendError, validates a dry run on the simulated kernel, and loads into a given device.
import { afterEach, describe, expect, it } from 'vitest';
import { applyPf } from '../../../src/backends/pf/apply.js';
import { NativePfDevice } from '../../../src/backends/pf/device.js';
import { BackendError } from '../../../src/backends/pf/errors.js';
import { SimulatedPfDevice } from '../../../src/backends/pf/sim-device.js';
import { getRelease } from '../../../src/backends/pf/abi/releases.js';
import { policy, SA } from './fixtures.js';

const ir = () => policy({
  '': [{ action: 'block', blockPolicy: 'drop' }, { action: 'anchor', quick: true, call: { name: 'tenant1', wildcard: false, targets: ['tenant1'] } }],
  tenant1: [{ action: 'pass', dir: 'in', proto: 6, af: 'inet', dstPort: { op: '=', lo: 443, hi: 443 }, state: 'keep', flags: SA }],
}, { loginterface: 'vether0' });

afterEach(() => {
  delete process.env.ZTB_PF_RELEASE;
});

describe('applyPf', () => {
  it('refuses to load without /dev/pf, naming the way out', async () => {
    await expect(applyPf(ir(), { platform: 'linux' })).rejects.toThrow(BackendError);
    await expect(applyPf(ir(), { platform: 'linux' })).rejects.toThrow('pf backend needs OpenBSD /dev/pf; use --dry-run to print the plan');
    expect(() => NativePfDevice.open()).toThrow(/needs OpenBSD/);
  });

  it('dry run off OpenBSD validates on the simulator and returns the plan', async () => {
    const r = await applyPf(ir(), { platform: 'linux', dryRun: true });
    expect([r.ranOn, r.committed, r.release]).toEqual(['simulator', false, 'pfvar-1.543']);
    expect(r.planText).toMatch(/^# pf transaction \(OpenBSD 7\.7-era/);
    expect(r.planText).toContain('DIOCSETSTATUSIF 0xC0284414  set loginterface vether0  [staged outside the transaction: not sent by a dry run]');
    expect(r.planText.trimEnd().split('\n').at(-1)).toBe('DIOCXCOMMIT 0xC0104452  (on error: DIOCXROLLBACK 0xC0104453)');
  });

  it('honours ZTB_PF_RELEASE and refuses unknown ones', async () => {
    process.env.ZTB_PF_RELEASE = 'pfvar-1.548';
    const r = await applyPf(ir(), { platform: 'linux', dryRun: true });
    expect(r.release).toBe('pfvar-1.548');
    expect(r.planText).toContain('DIOCADDRULE 0xCD604404');
    process.env.ZTB_PF_RELEASE = 'pfvar-9.999';
    await expect(applyPf(ir(), { platform: 'linux', dryRun: true })).rejects.toThrow(/unknown pf ABI release "pfvar-9.999"/);
  });

  it('loads into a given device, or only validates it with dryRun', async () => {
    const dev = new SimulatedPfDevice(getRelease('pfvar-1.543'));
    const dry = await applyPf(ir(), { device: dev, dryRun: true });
    expect([dry.ranOn, dry.committed, dev.rulesets.get('')!.active.length]).toEqual(['device', false, 0]);
    const r = await applyPf(ir(), { device: dev });
    expect(r.committed).toBe(true);
    // the IR's anchors go under ztb/, as with the text form
    expect([dev.rulesets.get('')!.active.length, dev.rulesets.get('ztb/tenant1')!.active.length, dev.statusIf]).toEqual([2, 1, 'vether0']);
    const t = await applyPf(ir(), { device: dev, scope: { kind: 'tenant', anchor: 'tenant1' } });
    expect(t.plan.elements.map((e) => e.anchor)).toEqual(['ztb/tenant1', 'ztb/tenant1']);
    const flat = await applyPf(ir(), { device: new SimulatedPfDevice(getRelease('pfvar-1.543')), anchorRoot: '' });
    expect(flat.plan.elements.map((e) => e.anchor)).toEqual(['', 'tenant1', '', 'tenant1']);
  });
});

describe('applyBackend (the CLI hook)', () => {
  function sink(): { io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream }; out: () => string } {
    let text = '';
    const w = { write: (c: string) => ((text += c), true) } as unknown as NodeJS.WritableStream;
    return { io: { stdout: w, stderr: w }, out: () => text };
  }
  it('prints the plan for a dry run and refuses a real load off OpenBSD', async () => {
    const { applyBackend } = await import('../../../src/backends/pf/apply.js');
    const s = sink();
    expect(await applyBackend(ir(), { dryRun: true, json: false }, s.io)).toBe(0);
    expect(s.out()).toContain('DIOCXBEGIN 0xC0104451');
    expect(s.out()).toMatch(/pf: dry run, plan validated on the simulated kernel \(pfvar-1\.543\); nothing loaded\n$/);
    const j = sink();
    await applyBackend(ir(), { dryRun: true, json: true }, j.io);
    const doc = JSON.parse(j.out()) as { backend: string; steps: { ioctl: string }[]; pfctl: { argv: string[] }[] };
    expect(doc.backend).toBe('pf');
    expect(doc.pfctl.map((c) => c.argv)).toEqual([['pfctl', '-n', '-a', 'ztb/tenant1', '-f', '-'], ['pfctl', '-nf', '-']]);
    expect(doc.steps.map((x) => x.ioctl)).toEqual(['DIOCXBEGIN', 'DIOCADDRULE', 'DIOCADDRULE', 'DIOCADDRULE', 'DIOCCLRIFFLAG', 'DIOCSETSTATUSIF', 'DIOCXCOMMIT']);
    await expect(applyBackend(ir(), { dryRun: false, json: false }, sink().io)).rejects.toThrow('pf backend needs OpenBSD /dev/pf; use --dry-run to print the plan');
  });
});
