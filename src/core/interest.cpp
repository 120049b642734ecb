/*
 * interest.cpp: interests of held values and the events they match (see
 * interest.hpp).
 */
#include "core/interest.hpp"

#include <algorithm>
#include <cstddef>
#include <cstring>

namespace ectosync {
namespace {

/* splitmix64's finalizer: spreads FNV's bits over the whole word. */
uint64_t mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

bool contains(const uint32_t *a, int n, uint32_t v) {
  return std::find(a, a + n, v) != a + n;
}

/* The filter size, clamped: an interest read while it was rewritten may
 * hold any number there. */
uint64_t filter_bits(int bloom_bits) {
  return static_cast<uint64_t>(std::clamp(bloom_bits, 64, kMaxBloomBits)) / 64 * 64;
}

/* The three bit positions of a token in a filter of nbits (double hashing). */
template <typename Fn>
void bits(uint64_t token, uint64_t nbits, Fn fn) {
  uint64_t h1 = token, h2 = (token >> 32) | 1;
  for (uint64_t i = 0; i < 3; i++) fn((h1 + i * h2) % nbits);
}

}  // namespace

uint64_t interest_token(uint32_t relid, int16_t attnum, std::string_view value) {
  uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
  auto feed = [&](const void *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
      h ^= static_cast<const unsigned char *>(p)[i];
      h *= 0x100000001b3ULL;
    }
  };
  feed(&relid, sizeof relid);
  feed(&attnum, sizeof attnum);
  feed(value.data(), value.size());
  return mix(h);
}

size_t Interest::bytes(int bloom_bits) {
  return offsetof(Interest, bloom) + filter_bits(bloom_bits) / 8;
}

void Interest::clear(int bits) {
  std::memset(this, 0, sizeof *this);
  bloom_bits = static_cast<int>(filter_bits(bits));
  exact = true;
}

void Interest::add_table(uint32_t relid) {
  if (contains(tables, ntables, relid)) return;
  if (ntables == kInterestTables)
    every_event = true;
  else
    tables[ntables++] = relid;
}

void Interest::add_wild(uint32_t relid) {
  add_table(relid);
  if (!contains(wild, nwild, relid) && nwild < kInterestTables) wild[nwild++] = relid;
}

void Interest::add_column(uint32_t relid, int16_t attnum) {
  add_table(relid);
  for (int i = 0; i < ncolumns; i++)
    if (columns[i].relid == relid && columns[i].attnum == attnum) return;
  if (ncolumns == kInterestColumns)
    every_event = true;
  else
    columns[ncolumns++] = InterestColumn{relid, attnum};
}

void Interest::add(uint32_t relid, int16_t attnum, std::string_view value) {
  add_column(relid, attnum);
  add_token(interest_token(relid, attnum, value));
}

void Interest::set_bits(uint64_t token) {
  bits(token, filter_bits(bloom_bits), [&](uint64_t b) { bloom[b / 64] |= 1ULL << (b % 64); });
}

/* Kept sorted while it fits; the first token that does not turns the
 * words into the Bloom filter of them all. */
void Interest::add_token(uint64_t token) {
  if (!exact) return set_bits(token);
  uint64_t *end = bloom + ntokens, *at = std::lower_bound(bloom, end, token);
  if (at != end && *at == token) return;
  if (ntokens < bloom_bits / 64) {
    std::memmove(at + 1, at, static_cast<size_t>(end - at) * sizeof(uint64_t));
    *at = token;
    ntokens++;
    return;
  }
  uint64_t kept[kMaxBloomWords];
  int n = ntokens;
  std::memcpy(kept, bloom, static_cast<size_t>(n) * sizeof(uint64_t));
  std::memset(bloom, 0, sizeof bloom);
  exact = false;
  ntokens = 0;
  for (int i = 0; i < n; i++) set_bits(kept[i]);
  set_bits(token);
}

std::pair<const uint64_t *, int> Interest::tokens() const {
  if (!exact) return {bloom, 0};
  return {bloom, std::clamp(ntokens, 0, static_cast<int>(filter_bits(bloom_bits) / 64))};
}

bool Interest::probe(uint64_t token) const {
  if (exact) {
    auto [first, n] = tokens();
    return std::binary_search(first, first + n, token);
  }
  bool all = true;
  bits(token, filter_bits(bloom_bits),
       [&](uint64_t b) { all = all && (bloom[b / 64] >> (b % 64) & 1); });
  return all;
}

EventProbe probe_of(const Event &ev) {
  EventProbe p;
  p.seq = ev.seq;
  p.relid = ev.relid;
  p.reload = ev.op == Op::Reload;
  for (const ColumnChange &c : ev.columns) {
    p.attnums.push_back(c.attnum);
    for (const std::optional<std::string> &v : {c.old_value, c.new_value})
      if (v) p.tokens.emplace_back(c.attnum, interest_token(ev.relid, c.attnum, *v));
  }
  return p;
}

bool Interest::matches(const Event &ev) const {
  return matches(probe_of(ev));
}

bool Interest::matches(const EventProbe &ev) const {
  if (every_event) return true;
  int nt = std::clamp(ntables, 0, kInterestTables), nw = std::clamp(nwild, 0, kInterestTables);
  int nc = std::clamp(ncolumns, 0, kInterestColumns);
  if (ev.reload) return ev.relid == 0 || contains(tables, nt, ev.relid);
  if (!contains(tables, nt, ev.relid)) return false;
  if (contains(wild, nw, ev.relid)) return true;
  bool keyed = false;
  for (int i = 0; i < nc; i++) {
    if (columns[i].relid != ev.relid) continue;
    keyed = true;
    int16_t attnum = columns[i].attnum;
    if (std::find(ev.attnums.begin(), ev.attnums.end(), attnum) == ev.attnums.end())
      return true; /* not captured: it may matter */
    for (const auto &[a, token] : ev.tokens)
      if (a == attnum && probe(token)) return true;
  }
  return !keyed; /* a table of the value without keys to tell: it matters */
}

}  // namespace ectosync
