// nftables backend: the renderer's output is pinned by goldens (UPDATE_GOLDEN=1 rewrites them) for
// hand-built IRs and for every example policy, and the kernel accepts every rendering (`nft -c`
// inside a scratch namespace). Pure rendering errors are typed and name the rule's position.
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { skipPrivileged } from '../../helpers/privileged.js';
import { checkNft } from '../../../src/backends/nft/apply.js';
import { NftRenderError } from '../../../src/backends/nft/errors.js';
import { Lab } from '../../../src/backends/nft/lab.js';
import { renderNft, type NftRenderOptions } from '../../../src/backends/nft/render.js';
import { loadPolicyFile } from '../../../src/policy/load.js';
import type { Ir } from '../../../src/policy/ir.js';
import { buildIr, host, prefix } from './ir-builder.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '../../..');
const goldenDir = join(here, 'golden');
const update = process.env.UPDATE_GOLDEN === '1';

/** A fixed address map so the goldens do not depend on the machine. */
const ADDRESSING: NftRenderOptions = {
  ifaddrs: { em0: ['198.51.100.2/24'], vether0: ['192.168.30.1/24', 'fd00:30::1/64'], 'vether0.10': ['10.10.10.1/24'], 'vether0.20': ['10.10.20.1/24'], lo: ['127.0.0.1/8'] },
  groups: { egress: ['em0'] },
};

function golden(name: string, value: unknown): void {
  const file = join(goldenDir, `${name}.json`);
  const text = JSON.stringify(value, null, 1) + '\n';
  if (update || !existsSync(file)) {
    mkdirSync(goldenDir, { recursive: true });
    writeFileSync(file, text);
    if (!update) throw new Error(`golden ${name}.json was missing and has been written; re-run`);
  }
  expect(text).toBe(readFileSync(file, 'utf8'));
}

const handBuilt: Record<string, Ir> = {
  'last-match-quick': buildIr({
    '': [
      { action: 'block', text: 'block all' },
      { action: 'pass', dir: 'in', proto: 6, dst: host('10.1.0.0/24'), dstPort: { op: '=', lo: 443, hi: 443 } },
      { action: 'block', quick: true, blockPolicy: 'return', src: host('10.9.0.0/16') },
      { action: 'pass', dir: 'out', quick: true, af: 'inet', state: 'none' },
    ],
  }),
  'anchors': buildIr({
    '': [
      { action: 'anchor', quick: true, iface: { name: 'vether0', neg: false }, call: { name: 't/*', wildcard: true, targets: ['t/a', 't/b'] } },
      { action: 'anchor', call: { name: 'x', wildcard: false, targets: ['x'] } },
    ],
    't/a': [{ action: 'pass', proto: 17, dstPort: { op: '<>', lo: 10, hi: 20 } }],
    't/b': [{ action: 'block', log: { all: false, matches: false, user: false }, proto: 1, icmpType: { type: 8, code: 0 } }],
    x: [{ action: 'pass', af: 'inet6', src: { neg: false, host: { type: 'table', name: 'ok' } } }],
  }, { tables: { ok: { name: 'ok', entries: [{ neg: false, prefix: prefix('fd00::/8') }, { neg: true, prefix: prefix('fd00:1::/32') }], persist: false, constant: false } }, skip: ['lo'] }),
};

const examples = readdirSync(join(root, 'examples')).filter((f) => f.endsWith('.pf.conf') || f.endsWith('.toml')).sort();

describe('renderer goldens', () => {
  for (const [name, ir] of Object.entries(handBuilt)) {
    test(`hand-built ${name}`, () => golden(name, renderNft(ir, ADDRESSING).json));
  }
  for (const f of examples) {
    test(`example ${f}`, () => golden(`example-${f}`, renderNft(loadPolicyFile(join(root, 'examples', f)), ADDRESSING).json));
  }
});

describe('renderer errors', () => {
  test('an rdr-to pool is refused with the rule position', () => {
    const ir = buildIr({ '': [{ action: 'pass', dir: 'in', rdrTo: { hosts: [{ type: 'prefix', prefix: prefix('10.0.0.1') }, { type: 'prefix', prefix: prefix('10.0.0.2') }] } }] });
    expect(() => renderNft(ir)).toThrow(NftRenderError);
    expect(() => renderNft(ir)).toThrow(/^test\.pf:1:1: rule 0 .*pools/);
  });
  test('nat-to (egress:0) without an address for egress is refused', () => {
    const ir = buildIr({ '': [{ action: 'match', dir: 'out', natTo: { hosts: [{ type: 'dynif', ifname: 'egress', mode: 'primary' }] } }] });
    expect(() => renderNft(ir, {})).toThrow(/resolves to no address/);
  });
  test('anchors nested deeper than nftables jump stack are refused', () => {
    const rs: Record<string, Parameters<typeof buildIr>[0][string]> = { '': [{ action: 'anchor', call: { name: 'a0', wildcard: false, targets: ['a0'] } }] };
    for (let i = 0; i < 9; i++) rs[`a${i}`] = [{ action: 'anchor', call: { name: `a${i + 1}`, wildcard: false, targets: [`a${i + 1}`] } }];
    rs['a9'] = [{ action: 'pass' }];
    expect(() => renderNft(buildIr(rs))).toThrow(/nest too deep/);
  });
});

describe('the kernel accepts every rendering (nft -c)', () => {
  const skip = skipPrivileged('nft');
  let lab: Lab | null = null;
  beforeAll(() => {
    if (!skip) lab = Lab.create('ztkc', []);
  });
  afterAll(() => lab?.destroy());
  for (const [name, ir] of Object.entries(handBuilt)) {
    test(`hand-built ${name}`, () => {
      if (skip) return;
      expect(() => checkNft(renderNft(ir, ADDRESSING), { netns: lab!.gw })).not.toThrow();
    });
  }
  for (const f of examples) {
    test(`example ${f}`, () => {
      if (skip) return;
      expect(() => checkNft(renderNft(loadPolicyFile(join(root, 'examples', f)), ADDRESSING), { netns: lab!.gw })).not.toThrow();
    });
  }
});
