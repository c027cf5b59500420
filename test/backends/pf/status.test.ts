// Read-only views of the (simulated) kernel: global status and the anchor tree after a load.
import { describe, expect, it } from 'vitest';
import { getRelease } from '../../../src/backends/pf/abi/releases.js';
import { executePlan, planLoad } from '../../../src/backends/pf/plan.js';
import { SimulatedPfDevice } from '../../../src/backends/pf/sim-device.js';
import { getStatus, listAnchorTree, listChildAnchors } from '../../../src/backends/pf/status.js';
import { policy } from './fixtures.js';

const R = getRelease('pfvar-1.543');

describe('status and anchors', () => {
  const ir = policy({
    '': [{ action: 'anchor', call: { name: 'ztb/*', wildcard: true, targets: ['ztb/a', 'ztb/b'] } }],
    'ztb/a': [{ action: 'pass' }],
    'ztb/b': [{ action: 'anchor', call: { name: 'ztb/b/web', wildcard: false, targets: ['ztb/b/web'] } }],
    'ztb/b/web': [{ action: 'pass' }],
  }, { loginterface: 'em0' });

  it('DIOCGETSTATUS reports the status interface after commit', () => {
    const dev = new SimulatedPfDevice(R);
    executePlan(planLoad(ir, { release: R }), dev);
    const st = getStatus(R, dev);
    expect([st.running, st.ifname, st.states]).toEqual([true, 'em0', 0]);
    expect(dev.calls.at(-1)).toMatchObject({ ioctl: 'DIOCGETSTATUS', request: 0xc2084415 });
  });

  it('walks the anchor tree with DIOCGETRULESETS / DIOCGETRULESET', () => {
    const dev = new SimulatedPfDevice(R);
    executePlan(planLoad(ir, { release: R }), dev);
    expect(listChildAnchors(R, dev, 'ztb')).toEqual(['a', 'b']);
    expect(listAnchorTree(R, dev)).toEqual(['ztb', 'ztb/a', 'ztb/b', 'ztb/b/web']);
    expect(listAnchorTree(R, dev, 'ztb/b')).toEqual(['ztb/b/web']);
    expect(() => listAnchorTree(R, dev, 'nope')).toThrow(/DIOCGETRULESETS failed: ENOENT/);
  });
});
