// Frame parser implementation. Every read goes through Cursor, which checks the remaining length
// first; a short read marks the key malformed instead of touching memory past the span.
#include "core/packet.h"

namespace ztb {

const char* malformed_reason_name(MalformedReason r) {
  switch (r) {
    case MalformedReason::kNone: return "none";
    case MalformedReason::kTruncatedEthernet: return "truncated-ethernet";
    case MalformedReason::kTruncatedVlan: return "truncated-vlan";
    case MalformedReason::kTruncatedIp: return "truncated-ip";
    case MalformedReason::kBadIpVersion: return "bad-ip-version";
    case MalformedReason::kBadIpHeaderLength: return "bad-ip-header-length";
    case MalformedReason::kBadIpTotalLength: return "bad-ip-total-length";
    case MalformedReason::kTruncatedTransport: return "truncated-transport";
    case MalformedReason::kIpv6ExtensionLimit: return "ipv6-extension-limit";
    case MalformedReason::kTruncatedIpv6Extension: return "truncated-ipv6-extension";
    case MalformedReason::kTruncatedVxlan: return "truncated-vxlan";
    case MalformedReason::kBadVxlan: return "bad-vxlan";
    case MalformedReason::kCount: break;
  }
  return "unknown";
}

namespace {

inline uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
inline uint32_t rd32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

enum class L4Result { kOk, kTruncated };

// Parses the transport header at `p` (n bytes available) into the key.
L4Result parse_l4(const uint8_t* p, size_t n, PacketKey& k) {
  switch (k.proto) {
    case 6:
      if (n < 20) return L4Result::kTruncated;
      k.sport = rd16(p);
      k.dport = rd16(p + 2);
      k.tcp_flags = p[13];
      k.has_ports = true;
      return L4Result::kOk;
    case 17:
      if (n < 8) return L4Result::kTruncated;
      k.sport = rd16(p);
      k.dport = rd16(p + 2);
      k.has_ports = true;
      return L4Result::kOk;
    case 1:
    case 58:
      if (n < 4) return L4Result::kTruncated;
      k.icmp_type = p[0];
      k.icmp_code = p[1];
      k.has_icmp = true;
      if (icmp_is_echo(k.proto, k.icmp_type)) {
        // Echo request/reply carry the id at offset 4; pf keys the state on it.
        if (n < 8) return L4Result::kTruncated;
        k.sport = rd16(p + 4);
        k.dport = 0;
      }
      return L4Result::kOk;
    default:
      return L4Result::kOk;
  }
}

// Parses the L3 packet at p (n bytes). `ethertype` is 0x0800 or 0x86dd. Returns the L4 payload
// offset of a UDP packet (for VXLAN) via *udp_payload / *udp_payload_len when applicable.
void parse_ip(const uint8_t* p, size_t n, uint16_t ethertype, PacketKey& k, const uint8_t** udp_payload,
              size_t* udp_payload_len) {
  *udp_payload = nullptr;
  *udp_payload_len = 0;
  if (ethertype == 0x0800) {
    if (n < 20) { k.malformed = MalformedReason::kTruncatedIp; return; }
    if ((p[0] >> 4) != 4) { k.malformed = MalformedReason::kBadIpVersion; return; }
    size_t ihl = size_t{p[0] & 0x0fu} * 4;
    if (ihl < 20) { k.malformed = MalformedReason::kBadIpHeaderLength; return; }
    if (n < ihl) { k.malformed = MalformedReason::kTruncatedIp; return; }
    size_t total = rd16(p + 2);
    if (total < ihl) { k.malformed = MalformedReason::kBadIpTotalLength; return; }
    if (total > n) { k.malformed = MalformedReason::kTruncatedIp; return; }
    k.af = 4;
    k.proto = p[9];
    k.src[0] = rd32(p + 12);
    k.dst[0] = rd32(p + 16);
    uint16_t frag = rd16(p + 6);
    if ((frag & 0x1fff) != 0) {  // fragment offset != 0: no transport header here
      k.fragment = true;
      return;
    }
    const uint8_t* l4 = p + ihl;
    size_t l4n = total - ihl;
    if (parse_l4(l4, l4n, k) != L4Result::kOk) { k.malformed = MalformedReason::kTruncatedTransport; return; }
    if (k.proto == 17) { *udp_payload = l4 + 8; *udp_payload_len = l4n - 8; }
    return;
  }
  // IPv6
  if (n < 40) { k.malformed = MalformedReason::kTruncatedIp; return; }
  if ((p[0] >> 4) != 6) { k.malformed = MalformedReason::kBadIpVersion; return; }
  size_t payload = rd16(p + 4);
  if (payload + 40 > n) { k.malformed = MalformedReason::kTruncatedIp; return; }
  k.af = 6;
  for (int i = 0; i < 4; ++i) {
    k.src[i] = rd32(p + 8 + 4 * i);
    k.dst[i] = rd32(p + 24 + 4 * i);
  }
  uint8_t next = p[6];
  const uint8_t* q = p + 40;
  size_t left = payload;
  int n_ext = 0;
  for (;;) {
    bool ext = next == 0 || next == 43 || next == 44 || next == 60 || next == 51;
    if (!ext) break;
    if (++n_ext > kMaxIpv6ExtHeaders) { k.malformed = MalformedReason::kIpv6ExtensionLimit; return; }
    if (left < 8) { k.malformed = MalformedReason::kTruncatedIpv6Extension; return; }
    size_t len;
    if (next == 44) {
      len = 8;
      uint16_t off = rd16(q + 2) & 0xfff8;
      if (off != 0) {  // non-first fragment
        k.proto = q[0];
        k.fragment = true;
        return;
      }
    } else if (next == 51) {
      len = (size_t{q[1]} + 2) * 4;  // AH counts 4-byte words
    } else {
      len = (size_t{q[1]} + 1) * 8;
    }
    if (len > left) { k.malformed = MalformedReason::kTruncatedIpv6Extension; return; }
    next = q[0];
    q += len;
    left -= len;
  }
  k.proto = next;
  if (parse_l4(q, left, k) != L4Result::kOk) { k.malformed = MalformedReason::kTruncatedTransport; return; }
  if (k.proto == 17) { *udp_payload = q + 8; *udp_payload_len = left - 8; }
}

// Parses Ethernet + VLAN tags; returns the L3 offset and ethertype, or marks the key malformed.
bool parse_l2(const uint8_t* p, size_t n, PacketKey& k, size_t* l3_off, uint16_t* ethertype) {
  if (n < 14) { k.malformed = MalformedReason::kTruncatedEthernet; return false; }
  size_t off = 12;
  uint16_t type = rd16(p + off);
  off += 2;
  for (int tags = 0; (type == 0x8100 || type == 0x88a8) && tags < 2; ++tags) {
    if (n < off + 4) { k.malformed = MalformedReason::kTruncatedVlan; return false; }
    // The innermost tag wins: it is the one that identifies the tenant's segment.
    k.vlan = rd16(p + off) & 0x0fff;
    k.has_vlan = true;
    type = rd16(p + off + 2);
    off += 4;
  }
  *l3_off = off;
  *ethertype = type;
  return true;
}

}  // namespace

PacketKey parse_frame(std::span<const uint8_t> frame) {
  PacketKey k;
  k.length = static_cast<uint32_t>(frame.size());
  const uint8_t* p = frame.data();
  size_t n = frame.size();
  for (int depth = 0; depth < 2; ++depth) {
    size_t l3 = 0;
    uint16_t type = 0;
    if (!parse_l2(p, n, k, &l3, &type)) return k;
    if (type != 0x0800 && type != 0x86dd) {
      k.non_ip = true;
      return k;
    }
    const uint8_t* udp_payload = nullptr;
    size_t udp_len = 0;
    parse_ip(p + l3, n - l3, type, k, &udp_payload, &udp_len);
    if (k.malformed != MalformedReason::kNone) return k;
    if (depth == 1 || k.proto != 17 || !k.has_ports || k.dport != kVxlanPort) return k;
    // VXLAN: 8-byte header (flags with the I bit, 24-bit VNI), then the inner Ethernet frame.
    if (udp_len < 8) { k.malformed = MalformedReason::kTruncatedVxlan; return k; }
    if ((udp_payload[0] & 0x08) == 0) { k.malformed = MalformedReason::kBadVxlan; return k; }
    uint32_t vni = rd32(udp_payload + 4) >> 8;
    uint16_t vlan = k.vlan;
    bool has_vlan = k.has_vlan;
    uint32_t length = k.length;
    k = PacketKey{};
    k.length = length;
    k.has_vni = true;
    k.vni = vni;
    // The outer tag (if any) is what the host saw; an inner tag, when present, overrides it below.
    k.vlan = vlan;
    k.has_vlan = has_vlan;
    p = udp_payload + 8;
    n = udp_len - 8;
  }
  return k;
}

}  // namespace ztb
