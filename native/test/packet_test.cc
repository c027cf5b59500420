// Frame parser tests: each header layer, fragments, VXLAN, and a fuzz over random bytes and every
// truncation of valid frames (run under ASan: any read past the span is a failure).
#include <cstring>
#include <random>
#include <vector>

#include "core/packet.h"
#include "test/testing.h"

using namespace ztb;

namespace {

struct Frame {
  std::vector<uint8_t> b;
  void u8(uint8_t v) { b.push_back(v); }
  void u16(uint16_t v) { b.push_back(v >> 8); b.push_back(v & 0xff); }
  void u32(uint32_t v) { u16(v >> 16); u16(v & 0xffff); }
  void eth(uint16_t type) { for (int i = 0; i < 12; ++i) u8(i); u16(type); }
  void vlan(uint16_t id, uint16_t type) { u16(id); u16(type); }
  // IPv4 header with the given payload length; fills total length.
  void ipv4(uint8_t proto, uint32_t src, uint32_t dst, size_t payload, uint16_t frag = 0) {
    u8(0x45); u8(0); u16(static_cast<uint16_t>(20 + payload)); u16(1); u16(frag); u8(64); u8(proto); u16(0);
    u32(src); u32(dst);
  }
  void ipv6(uint8_t next, size_t payload) {
    u32(0x60000000); u16(static_cast<uint16_t>(payload)); u8(next); u8(64);
    for (int i = 0; i < 16; ++i) u8(i == 0 ? 0x20 : (i == 15 ? 1 : 0));
    for (int i = 0; i < 16; ++i) u8(i == 0 ? 0x20 : (i == 15 ? 2 : 0));
  }
  void tcp(uint16_t sp, uint16_t dp, uint8_t flags) {
    u16(sp); u16(dp); u32(1); u32(0); u8(0x50); u8(flags); u16(1000); u16(0); u16(0);
  }
  void udp(uint16_t sp, uint16_t dp, size_t payload) { u16(sp); u16(dp); u16(static_cast<uint16_t>(8 + payload)); u16(0); }
};

std::vector<uint8_t> tcp4_frame() {
  Frame f;
  f.eth(0x0800);
  f.ipv4(6, 0x0a000001, 0x0a000002, 20);
  f.tcp(40000, 443, 0x02);
  return f.b;
}

std::vector<uint8_t> vxlan_frame() {
  Frame inner;
  inner.eth(0x8100);
  inner.vlan(20, 0x0800);
  inner.ipv4(17, 0x0a0a0a05, 0x08080808, 8);
  inner.udp(5353, 53, 0);
  Frame f;
  f.eth(0x0800);
  f.ipv4(17, 0xc0a80001, 0xc0a80002, 8 + 8 + inner.b.size());
  f.udp(12345, 4789, 8 + inner.b.size());
  f.u8(0x08); f.u8(0); f.u16(0); f.u32(5001u << 8);
  f.b.insert(f.b.end(), inner.b.begin(), inner.b.end());
  return f.b;
}

std::vector<uint8_t> icmp6_frame() {
  Frame f;
  f.eth(0x86dd);
  // hop-by-hop (8 bytes) then ICMPv6 echo request
  f.ipv6(0, 8 + 8);
  f.u8(58); f.u8(0); for (int i = 0; i < 6; ++i) f.u8(0);
  f.u8(128); f.u8(0); f.u16(0); f.u16(0x1234); f.u16(1);
  return f.b;
}

}  // namespace

TEST(packet_tcp4) {
  auto b = tcp4_frame();
  PacketKey k = parse_frame(b);
  CHECK(k.malformed == MalformedReason::kNone);
  CHECK_EQ(int{k.af}, 4);
  CHECK_EQ(int{k.proto}, 6);
  CHECK_EQ(k.src[0], 0x0a000001u);
  CHECK_EQ(k.dst[0], 0x0a000002u);
  CHECK_EQ(int{k.sport}, 40000);
  CHECK_EQ(int{k.dport}, 443);
  CHECK_EQ(int{k.tcp_flags}, 2);
  CHECK(k.has_ports);
  CHECK_EQ(k.length, static_cast<uint32_t>(b.size()));
}

TEST(packet_ipv4_options_and_fragments) {
  Frame f;
  f.eth(0x0800);
  // IHL 6 (one option word), UDP
  f.u8(0x46); f.u8(0); f.u16(24 + 8); f.u16(1); f.u16(0); f.u8(64); f.u8(17); f.u16(0);
  f.u32(1); f.u32(2); f.u32(0x01010101);
  f.udp(1000, 2000, 0);
  PacketKey k = parse_frame(f.b);
  CHECK(k.malformed == MalformedReason::kNone);
  CHECK_EQ(int{k.sport}, 1000);
  CHECK_EQ(int{k.dport}, 2000);
  // Non-first fragment: no ports.
  Frame g;
  g.eth(0x0800);
  g.ipv4(6, 1, 2, 8, 0x0010);
  g.u32(0); g.u32(0);
  k = parse_frame(g.b);
  CHECK(k.malformed == MalformedReason::kNone);
  CHECK(k.fragment);
  CHECK(!k.has_ports);
  CHECK_EQ(int{k.proto}, 6);
}

TEST(packet_vlan_qinq) {
  Frame f;
  f.eth(0x88a8);
  f.vlan(100, 0x8100);
  f.vlan(10, 0x0800);
  f.ipv4(17, 1, 2, 8);
  f.udp(1, 2, 0);
  PacketKey k = parse_frame(f.b);
  CHECK(k.malformed == MalformedReason::kNone);
  CHECK(k.has_vlan);
  CHECK_EQ(int{k.vlan}, 10);
  CHECK_EQ(int{k.proto}, 17);
}

TEST(packet_vxlan_decap) {
  auto b = vxlan_frame();
  PacketKey k = parse_frame(b);
  CHECK(k.malformed == MalformedReason::kNone);
  CHECK(k.has_vni);
  CHECK_EQ(k.vni, 5001u);
  CHECK(k.has_vlan);
  CHECK_EQ(int{k.vlan}, 20);
  CHECK_EQ(k.src[0], 0x0a0a0a05u);
  CHECK_EQ(int{k.dport}, 53);
  CHECK_EQ(k.length, static_cast<uint32_t>(b.size()));
}

TEST(packet_icmp6_ext_headers) {
  auto b = icmp6_frame();
  PacketKey k = parse_frame(b);
  CHECK(k.malformed == MalformedReason::kNone);
  CHECK_EQ(int{k.af}, 6);
  CHECK_EQ(int{k.proto}, 58);
  CHECK(k.has_icmp);
  CHECK_EQ(int{k.icmp_type}, 128);
  CHECK_EQ(int{k.sport}, 0x1234);
  CHECK_EQ(k.src[0], 0x20000000u);
  CHECK_EQ(k.src[3], 1u);
}

TEST(packet_non_ip_and_malformed) {
  Frame arp;
  arp.eth(0x0806);
  for (int i = 0; i < 28; ++i) arp.u8(0);
  PacketKey k = parse_frame(arp.b);
  CHECK(k.non_ip);
  CHECK(k.malformed == MalformedReason::kNone);
  auto b = tcp4_frame();
  b[14] = 0x65;  // version 6 in an IPv4 ethertype
  CHECK(parse_frame(b).malformed == MalformedReason::kBadIpVersion);
  b = tcp4_frame();
  b[14] = 0x44;  // IHL 4 < 5
  CHECK(parse_frame(b).malformed == MalformedReason::kBadIpHeaderLength);
  b = tcp4_frame();
  CHECK(parse_frame(std::span<const uint8_t>(b.data(), 10)).malformed == MalformedReason::kTruncatedEthernet);
  CHECK(parse_frame(std::span<const uint8_t>(b.data(), 30)).malformed == MalformedReason::kTruncatedIp);
  // Ten hop-by-hop headers exceed the cap.
  Frame f;
  f.eth(0x86dd);
  f.ipv6(0, 80);
  for (int i = 0; i < 10; ++i) { f.u8(i == 9 ? 59 : 0); f.u8(0); for (int j = 0; j < 6; ++j) f.u8(0); }
  CHECK(parse_frame(f.b).malformed == MalformedReason::kIpv6ExtensionLimit);
}

TEST(packet_fuzz_truncations_and_random_bytes) {
  std::mt19937 rng(1234);
  std::vector<std::vector<uint8_t>> valid = {tcp4_frame(), vxlan_frame(), icmp6_frame()};
  int parsed = 0;
  for (const auto& v : valid) {
    for (size_t n = 0; n <= v.size(); ++n) {
      // Copy into an exact-size heap buffer so ASan catches any over-read.
      std::vector<uint8_t> buf(v.begin(), v.begin() + n);
      PacketKey k = parse_frame(buf);
      if (n < v.size()) CHECK(k.malformed != MalformedReason::kNone || k.non_ip);
      parsed += k.malformed == MalformedReason::kNone ? 1 : 0;
    }
  }
  CHECK_EQ(parsed, 3);
  for (int i = 0; i < 200000; ++i) {
    size_t n = rng() % 160;
    std::vector<uint8_t> buf(n);
    for (auto& x : buf) x = static_cast<uint8_t>(rng());
    if (n >= 14 && (rng() & 1)) {  // bias towards IP ethertypes so deeper layers get fuzzed
      bool v6 = rng() & 1;
      buf[12] = v6 ? 0x86 : 0x08;
      buf[13] = v6 ? 0xdd : 0x00;
      if (n > 14) buf[14] = static_cast<uint8_t>((v6 ? 0x60 : 0x45) | (buf[14] & 0x0f & (v6 ? 0x0f : 0)));
    }
    (void)parse_frame(buf);
  }
  // Mutations of valid frames.
  for (int i = 0; i < 100000; ++i) {
    std::vector<uint8_t> buf = valid[rng() % valid.size()];
    int flips = 1 + rng() % 4;
    for (int j = 0; j < flips; ++j) buf[rng() % buf.size()] = static_cast<uint8_t>(rng());
    buf.resize(rng() % (buf.size() + 1));
    (void)parse_frame(buf);
  }
}
