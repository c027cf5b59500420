// Longest-prefix match over IPv4 and IPv6 prefixes (tenant subnets).
//
// What: add(af, words, len, value) then lookup(af, words) -> value of the longest prefix that
// contains the address, or kLpmNone.
// Representation: per family, one sorted array of masked addresses per distinct prefix length;
// lengths are visited longest first and each is a binary search. Addresses are four host-order
// 32-bit words (IPv4 in word 0). A duplicate prefix keeps the value given first.
// Worked example: add 10.0.0.0/8 -> 1, add 10.1.0.0/16 -> 2; lookup 10.1.2.3: /16 -> 2;
// lookup 10.2.0.1: /16 misses, /8 -> 1; lookup 11.0.0.1 -> kLpmNone.
// Complexity: lookup O(L log N) for L distinct lengths. Thread-safety: immutable after finish().
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace ztb {

constexpr uint32_t kLpmNone = 0xffffffffu;

class Lpm {
 public:
  // Adds a prefix; len must be <= 32 (af 4) or <= 128 (af 6). Returns false when invalid.
  bool add(uint8_t af, const uint32_t* words, uint32_t len, uint32_t value);
  // Sorts the tables; call after the last add().
  void finish();
  uint32_t lookup(uint8_t af, const uint32_t* words) const;
  bool empty() const { return levels_[0].empty() && levels_[1].empty(); }

  static std::array<uint32_t, 4> mask(const uint32_t* words, uint32_t len, int n_words);

 private:
  struct Item {
    std::array<uint32_t, 4> addr;
    uint32_t value;
    uint32_t order;
  };
  struct Level {
    uint32_t len;
    std::vector<Item> items;
  };
  std::vector<Level> levels_[2];  // [0] IPv4, [1] IPv6; longest first after finish()
  uint32_t n_added_ = 0;
};

}  // namespace ztb
