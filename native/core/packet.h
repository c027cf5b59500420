// Frame parser: one Ethernet frame -> the PacketKey the engine classifies.
//
// What: parse_frame() reads Ethernet II, up to two VLAN tags (802.1Q 0x8100 and QinQ 0x88a8; the
// innermost tag's id is recorded), IPv4 (options via IHL, fragments), IPv6 (extension headers
// hop-by-hop / routing / fragment / destination options / AH, at most kMaxIpv6ExtHeaders), TCP
// (ports, flags), UDP (ports), ICMP / ICMPv6 (type, code, echo id), and VXLAN: an IPv4/IPv6 UDP
// packet to port 4789 is decapsulated once (the VNI is recorded; the inner Ethernet frame becomes
// the packet; a VXLAN header inside the inner frame is not decapsulated again).
//
// Representation: PacketKey holds addresses as four host-order 32-bit words (IPv4 in word 0,
// words 1..3 zero) so that they map 1:1 onto classifier dimensions.
//
// Fragments: a non-first IPv4/IPv6 fragment has no transport header; it is keyed with
// has_ports = false and has_icmp = false, so it never matches a rule with a port or ICMP-type
// test (pf without reassembly behaves the same way). A first fragment is parsed normally.
//
// Malformed input: the parser never reads past the span. Anything it cannot parse sets
// `malformed` to a MalformedReason (the engine blocks it and counts it per reason). A frame that
// is well formed but carries no IP (ARP, LLDP) sets `non_ip` (the engine passes it: pf filters
// IP only).
//
// Worked example: 14-byte Ethernet (type 0x0800) + 20-byte IPv4 (proto 6, 10.0.0.1 -> 10.0.0.2)
// + TCP 40000 -> 443 flags S: af = 4, proto = 6, src[0] = 0x0a000001, dst[0] = 0x0a000002,
// sport = 40000, dport = 443, tcp_flags = 0x02, has_ports = true, length = frame size.
//
// Complexity: O(header bytes), bounded by the extension header cap. Thread-safety: pure function.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace ztb {

enum class MalformedReason : uint8_t {
  kNone = 0,
  kTruncatedEthernet,
  kTruncatedVlan,
  kTruncatedIp,
  kBadIpVersion,
  kBadIpHeaderLength,
  kBadIpTotalLength,
  kTruncatedTransport,
  kIpv6ExtensionLimit,
  kTruncatedIpv6Extension,
  kTruncatedVxlan,
  kBadVxlan,
  kCount,
};

const char* malformed_reason_name(MalformedReason r);

constexpr int kMaxIpv6ExtHeaders = 8;
constexpr uint16_t kVxlanPort = 4789;

struct PacketKey {
  uint32_t ifindex = 0;
  uint8_t dir = 0;    // 0 = in, 1 = out
  uint8_t af = 0;     // 4, 6; 0 = not IP
  uint8_t proto = 0;  // IP protocol number (after IPv6 extension headers)
  uint8_t tcp_flags = 0;
  uint32_t src[4] = {0, 0, 0, 0};
  uint32_t dst[4] = {0, 0, 0, 0};
  uint16_t sport = 0;  // ICMP echo: the echo id
  uint16_t dport = 0;
  uint8_t icmp_type = 0;
  uint8_t icmp_code = 0;
  bool has_ports = false;  // TCP/UDP with a transport header
  bool has_icmp = false;   // ICMP/ICMPv6 with a header
  bool icmp_code_known = true;  // false only for pre-parsed headers that carry no code
  bool fragment = false;   // non-first fragment
  bool has_vlan = false;
  bool has_vni = false;
  bool non_ip = false;
  uint16_t vlan = 0;
  uint32_t vni = 0;
  uint32_t length = 0;  // bytes on the wire
  MalformedReason malformed = MalformedReason::kNone;

  int addr_words() const { return af == 6 ? 4 : 1; }
};

// Parses one frame. Sets every field but ifindex and dir, which the caller supplies.
PacketKey parse_frame(std::span<const uint8_t> frame);

// Is this ICMP / ICMPv6 type a query whose echo id keys the state (echo request/reply)?
inline bool icmp_is_echo(uint8_t proto, uint8_t type) {
  if (proto == 1) return type == 0 || type == 8;
  if (proto == 58) return type == 128 || type == 129;
  return false;
}

// ICMP error types pf relates to the state of the packet they quote (pf_icmp_mapping).
inline bool icmp_is_error(uint8_t proto, uint8_t type) {
  if (proto == 1) return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
  if (proto == 58) return type == 1 || type == 2 || type == 3 || type == 4 || type == 137;
  return false;
}

}  // namespace ztb
