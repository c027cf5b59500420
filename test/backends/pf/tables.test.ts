// Live table operations against the simulated kernel: atomic address replacement, persistent table
// creation, and table statistics with the grow-and-retry buffer protocol.
import { describe, expect, it } from 'vitest';
import { getRelease } from '../../../src/backends/pf/abi/releases.js';
import { PfIoctlError } from '../../../src/backends/pf/errors.js';
import { executePlan, planLoad } from '../../../src/backends/pf/plan.js';
import { SimulatedPfDevice } from '../../../src/backends/pf/sim-device.js';
import { addTables, getTableStats, setTableAddrs } from '../../../src/backends/pf/tables.js';
import { policy, prefix } from './fixtures.js';

const R = getRelease('pfvar-1.543');
const pos = { file: 't', line: 1, col: 1 };

function loaded(): SimulatedPfDevice {
  const dev = new SimulatedPfDevice(R);
  const ir = policy({ '': [{ action: 'pass', src: { neg: false, host: { type: 'table', name: 'members' } } }] }, {
    tables: [{ name: 'members', entries: [{ neg: false, prefix: prefix('10.0.0.1') }], persist: false, constant: false, pos }],
  });
  executePlan(planLoad(ir, { release: R }), dev);
  return dev;
}

describe('live tables', () => {
  it('DIOCRSETADDRS replaces a table and reports the difference', () => {
    const dev = loaded();
    const r = setTableAddrs(R, dev, '', 'members', [{ neg: false, prefix: prefix('10.0.0.1') }, { neg: false, prefix: prefix('10.0.0.2') }, { neg: true, prefix: prefix('10.0.0.0/8') }]);
    expect(r).toEqual({ added: 2, deleted: 0, changed: 0 });
    expect(dev.tables.get('')!.active.get('members')!.entries).toBe(3);
    expect(dev.calls.at(-1)).toMatchObject({ ioctl: 'DIOCRSETADDRS', request: 0xc4504445 });
    expect(() => setTableAddrs(R, dev, '', 'nope', [])).toThrow(PfIoctlError);
    expect(() => setTableAddrs(R, dev, '', 'nope', [])).toThrow(/DIOCRSETADDRS failed: ESRCH \(table <nope> in ""\)/);
  });

  it('DIOCRADDTABLES creates only the missing tables', () => {
    const dev = loaded();
    expect(addTables(R, dev, '', ['members', 'tenant1_vms', 'tenant2_vms'])).toBe(2);
    expect([...dev.tables.get('')!.active.keys()].sort()).toEqual(['members', 'tenant1_vms', 'tenant2_vms']);
  });

  it('DIOCRGETTSTATS grows its buffer to the size the kernel reports', () => {
    const dev = loaded();
    addTables(R, dev, '', ['a', 'b', 'c']);
    dev.setTableStats('', 'members', { match: 42n, packets: [[1n, 2n, 3n, 4n], [5n, 6n, 7n, 8n]] });
    const stats = getTableStats(R, dev, '', { initial: 1 });
    expect(dev.names().filter((n) => n === 'DIOCRGETTSTATS')).toHaveLength(2);
    expect(stats.map((s) => s.name)).toEqual(['members', 'a', 'b', 'c']);
    expect(stats[0]).toMatchObject({ anchor: '', count: 1, match: 42n, packets: [[1n, 2n, 3n, 4n], [5n, 6n, 7n, 8n]] });
    expect(() => getTableStats(R, dev, '', { initial: 1, maxTables: 2 })).toThrow(/has 4 tables, more than the 2/);
  });
});
