// Longest-prefix match implementation.
#include "core/lpm.h"

#include <algorithm>

namespace ztb {

std::array<uint32_t, 4> Lpm::mask(const uint32_t* words, uint32_t len, int n_words) {
  std::array<uint32_t, 4> out{0, 0, 0, 0};
  for (int i = 0; i < n_words; ++i) {
    uint32_t bits = len > static_cast<uint32_t>(32 * i) ? len - 32 * i : 0;
    if (bits >= 32) out[i] = words[i];
    else if (bits > 0) out[i] = words[i] & ~(0xffffffffu >> bits);
  }
  return out;
}

bool Lpm::add(uint8_t af, const uint32_t* words, uint32_t len, uint32_t value) {
  if (af != 4 && af != 6) return false;
  int fam = af == 4 ? 0 : 1;
  if (len > (af == 4 ? 32u : 128u)) return false;
  auto& levels = levels_[fam];
  Level* lvl = nullptr;
  for (Level& l : levels) if (l.len == len) lvl = &l;
  if (!lvl) {
    levels.push_back(Level{len, {}});
    lvl = &levels.back();
  }
  lvl->items.push_back(Item{mask(words, len, af == 4 ? 1 : 4), value, n_added_++});
  return true;
}

void Lpm::finish() {
  for (auto& levels : levels_) {
    std::sort(levels.begin(), levels.end(), [](const Level& a, const Level& b) { return a.len > b.len; });
    for (Level& l : levels) {
      // Stable order by address then insertion, then drop later duplicates: the first add wins.
      std::sort(l.items.begin(), l.items.end(), [](const Item& a, const Item& b) {
        return a.addr != b.addr ? a.addr < b.addr : a.order < b.order;
      });
      l.items.erase(std::unique(l.items.begin(), l.items.end(),
                                [](const Item& a, const Item& b) { return a.addr == b.addr; }),
                    l.items.end());
    }
  }
}

uint32_t Lpm::lookup(uint8_t af, const uint32_t* words) const {
  if (af != 4 && af != 6) return kLpmNone;
  int n_words = af == 4 ? 1 : 4;
  for (const Level& l : levels_[af == 4 ? 0 : 1]) {
    auto key = mask(words, l.len, n_words);
    auto it = std::lower_bound(l.items.begin(), l.items.end(), key,
                               [](const Item& a, const std::array<uint32_t, 4>& k) { return a.addr < k; });
    if (it != l.items.end() && it->addr == key) return it->value;
  }
  return kLpmNone;
}

}  // namespace ztb
