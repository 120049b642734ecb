/*
 * interest.cpp: interests of held values and the events they match (see
 * interest.hpp).
 */
#include "core/interest.hpp"

#include <algorithm>
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

/* The three bit positions of a token (double hashing). */
template <typename Fn>
void bits(uint64_t token, Fn fn) {
  uint64_t h1 = token, h2 = (token >> 32) | 1;
  for (uint64_t i = 0; i < 3; i++) fn((h1 + i * h2) % kBloomBits);
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

void Interest::clear() {
  std::memset(this, 0, sizeof *this);
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
  bits(interest_token(relid, attnum, value),
       [&](uint64_t b) { bloom[b / 64] |= 1ULL << (b % 64); });
}

bool Interest::probe(uint64_t token) const {
  bool all = true;
  bits(token, [&](uint64_t b) { all = all && (bloom[b / 64] >> (b % 64) & 1); });
  return all;
}

bool Interest::matches(const Event &ev) const {
  if (every_event) return true;
  if (ev.op == Op::Reload) return ev.relid == 0 || contains(tables, ntables, ev.relid);
  if (!contains(tables, ntables, ev.relid)) return false;
  if (contains(wild, nwild, ev.relid)) return true;
  bool keyed = false;
  for (int i = 0; i < ncolumns; i++) {
    if (columns[i].relid != ev.relid) continue;
    keyed = true;
    const ColumnChange *c = ev.column(columns[i].attnum);
    if (!c) return true; /* not captured: it may matter */
    if (c->old_value && probe(interest_token(ev.relid, c->attnum, *c->old_value))) return true;
    if (c->new_value && probe(interest_token(ev.relid, c->attnum, *c->new_value))) return true;
  }
  return !keyed; /* a table of the value without keys to tell: it matters */
}

}  // namespace ectosync
