// Packet-line grammar: accepted forms, defaults, errors with line and column, and the
// format/parse round trip over generated packets.
import { describe, expect, it } from 'vitest';
import { formatPacketLine, isBlankPacketLine, parsePacketLine, PacketLineError } from '../../src/engine/packet-line.js';
import { randomPackets, testSeed } from '../helpers/gen-policy.js';

function errAt(line: string): { col: number; msg: string } {
  try {
    parsePacketLine(line, 7, 'in.txt');
  } catch (e) {
    expect(e).toBeInstanceOf(PacketLineError);
    const pe = e as PacketLineError;
    expect(pe.message).toMatch(/^in\.txt:7:\d+: /);
    return { col: pe.col, msg: pe.detail };
  }
  throw new Error(`accepted: ${line}`);
}

describe('packet lines', () => {
  it('parses tcp with default SYN, udp, icmp and IPv6 in brackets', () => {
    expect(parsePacketLine('in on vether0.10 tcp 10.10.10.5:40000 > 10.10.10.1:443')).toEqual({
      dir: 'in',
      ifname: 'vether0.10',
      af: 'inet',
      proto: 6,
      src: '10.10.10.5',
      sport: 40000,
      dst: '10.10.10.1',
      dport: 443,
      tcpFlags: 0x02,
    });
    expect(parsePacketLine('out on em0 udp 10.0.0.1:53 > 10.0.0.2:5353 len 100 vlan 10 vni 42')).toMatchObject({ proto: 17, tcpFlags: 0, length: 100, vlan: 10, vni: 42 });
    expect(parsePacketLine('in on em0 tcp [2001:DB8::1]:443 > [2001:db8:0:0::2]:80 flags FA')).toMatchObject({ af: 'inet6', src: '2001:db8::1', dst: '2001:db8::2', tcpFlags: 0x11 });
    expect(parsePacketLine('in on em0 icmp 10.0.0.1 > 10.0.0.2 icmp-type 3 code 1')).toMatchObject({ proto: 1, sport: 0, dport: 0, icmpType: 3, icmpCode: 1 });
    expect(parsePacketLine('in on em0 icmp6 2001:db8::1 > 2001:db8::2 id 9')).toMatchObject({ proto: 58, sport: 9 });
    expect(parsePacketLine('in on em0 47 10.0.0.1 > 10.0.0.2  # gre')).toMatchObject({ proto: 47 });
    expect(isBlankPacketLine('   # note')).toBe(true);
    expect(isBlankPacketLine('  ')).toBe(true);
  });

  it('reports the column of the problem', () => {
    expect(errAt('in on em0 tcp 10.0.0.1 > 10.0.0.2:80')).toMatchObject({ col: 23, msg: expect.stringMatching(/source port/) });
    expect(errAt('in on em0 tcp 10.0.0.1:1 > 10.0.0.2')).toMatchObject({ col: 36, msg: expect.stringMatching(/destination port/) });
    expect(errAt('sideways on em0 tcp 10.0.0.1:1 > 10.0.0.2:2').col).toBe(1);
    expect(errAt('in at em0 tcp 10.0.0.1:1 > 10.0.0.2:2').col).toBe(4);
    expect(errAt('in on em0 sctp 10.0.0.1:1 > 10.0.0.2:2').col).toBe(11);
    expect(errAt('in on em0 tcp 10.0.0.300:1 > 10.0.0.2:2').col).toBe(15);
    expect(errAt('in on em0 tcp 10.0.0.1:70000 > 10.0.0.2:2').col).toBe(24);
    expect(errAt('in on em0 tcp 10.0.0.1:1 - 10.0.0.2:2').col).toBe(26);
    expect(errAt('in on em0 tcp 10.0.0.1:1 > 10.0.0.2:2 flags SX').col).toBe(46);
    expect(errAt('in on em0 tcp 10.0.0.1:1 > [2001:db8::1]:2').msg).toMatch(/inet6/);
    expect(errAt('in on em0 icmp 10.0.0.1:5 > 10.0.0.2').msg).toMatch(/no ports/);
    expect(errAt('in on em0 udp 10.0.0.1:1 > 10.0.0.2:2 flags S').msg).toMatch(/only with tcp/);
    expect(errAt('in on em0 udp 10.0.0.1:1 > 10.0.0.2:2 bogus').col).toBe(39);
    expect(errAt('in on em0 udp 10.0.0.1:1 > 10.0.0.2:2 len 1 len 2').col).toBe(45);
    expect(errAt('in on em0').msg).toMatch(/end of line/);
    expect(errAt('x'.repeat(600)).msg).toMatch(/longer/);
  });

  it('format and parse are inverse on generated packets', () => {
    const seed = testSeed('packet-line round trip');
    for (const p of randomPackets(seed, 2000)) {
      expect(parsePacketLine(formatPacketLine(p))).toEqual(p);
    }
  });
});

describe('address canonical form', () => {
  it('formats addresses like RFC 5952', async () => {
    const { canonicalAddr } = await import('../../src/engine/reference-addr.js');
    expect(canonicalAddr('2001:DB8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1');
    expect(canonicalAddr('2001:db8:0:0:0:0:2:1')).toBe('2001:db8::2:1');
    expect(canonicalAddr('2001:db8::0:1')).toBe('2001:db8::1');
    expect(canonicalAddr('0:0:0:0:0:0:0:0')).toBe('::');
    expect(canonicalAddr('::ffff:10.0.0.1')).toBe('::ffff:10.0.0.1');
    expect(canonicalAddr('2001:db8:1:1:1:1:1:1')).toBe('2001:db8:1:1:1:1:1:1');
    expect(canonicalAddr('2001:0:0:1:0:0:0:1')).toBe('2001:0:0:1::1');
    expect(canonicalAddr('010.0.0.1')).toBeNull();
    expect(canonicalAddr('1:2:3:4:5:6:7:8:9')).toBeNull();
    expect(canonicalAddr('1::2::3')).toBeNull();
  });
});
