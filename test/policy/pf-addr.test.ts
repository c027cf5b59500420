// Address parsing and canonical printing used by the pf.conf compiler.
import { describe, expect, test } from 'vitest';
import { formatIpv6, makePrefix, parseAddress, parseIpv4, parseIpv6, prefixText } from '../../src/policy/pf-addr.js';

describe('pf-addr', () => {
  test('IPv4 parse is strict', () => {
    expect(parseIpv4('10.1.2.3')).toBe(0x0a010203n);
    for (const bad of ['10.1.2', '10.1.2.3.4', '256.0.0.1', '1.2.3.-1', '1..2.3', '01234.1.1.1', 'a.b.c.d']) {
      expect(parseIpv4(bad), bad).toBeNull();
    }
  });

  test('IPv6 parse and RFC 5952 print', () => {
    const cases: [string, string][] = [
      ['::', '::'],
      ['::1', '::1'],
      ['2001:DB8::1', '2001:db8::1'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['2001:0db8:0000:0000:0000:0000:0002:0001', '2001:db8::2:1'],
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
      ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
      ['fe80::', 'fe80::'],
      ['::ffff:192.0.2.1', '::ffff:c000:201'],
    ];
    for (const [inp, out] of cases) {
      const v = parseIpv6(inp);
      expect(v, inp).not.toBeNull();
      expect(formatIpv6(v!), inp).toBe(out);
    }
    for (const bad of ['1::2::3', '12345::', ':::', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', 'g::1', '::1.2.3']) {
      expect(parseIpv6(bad), bad).toBeNull();
    }
  });

  test('prefixes are masked and printed like pfctl', () => {
    expect(makePrefix(parseAddress('192.168.1.77')!, 24)).toEqual({ af: 'inet', addr: '192.168.1.0', len: 24 });
    expect(makePrefix(parseAddress('10.0.0.1')!, 0)).toEqual({ af: 'inet', addr: '0.0.0.0', len: 0 });
    expect(makePrefix(parseAddress('2001:db8::ff')!, 64)).toEqual({ af: 'inet6', addr: '2001:db8::', len: 64 });
    expect(prefixText({ af: 'inet', addr: '10.0.0.1', len: 32 })).toBe('10.0.0.1');
    expect(prefixText({ af: 'inet6', addr: '::1', len: 128 })).toBe('::1');
    expect(prefixText({ af: 'inet', addr: '10.0.0.0', len: 8 })).toBe('10.0.0.0/8');
  });
});
