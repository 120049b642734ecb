/*
 * interest.cpp: interests of held values and the events they match (see
 * interest.hpp).
 */
#include "core/interest.hpp"

#include <algorithm>
#include <cstddef>
#include <cstring>

namespace ectosync {

uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

namespace {

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

/*
 * Order of two numbers as numeric's output writes them (no exponent):
 * -Infinity, then the numbers, then Infinity, then NaN (numeric's order).
 */
int compare_number_texts(std::string_view a, std::string_view b) {
  auto rank = [](std::string_view t) {
    if (t == "-Infinity") return 0;
    if (t == "Infinity") return 2;
    if (t == "NaN") return 3;
    return 1;
  };
  int ra = rank(a), rb = rank(b);
  if (ra != rb || ra != 1) return ra < rb ? -1 : ra > rb ? 1 : 0;
  bool na = !a.empty() && a[0] == '-', nb = !b.empty() && b[0] == '-';
  if (na) a.remove_prefix(1);
  if (nb) b.remove_prefix(1);
  auto split = [](std::string_view t) {
    size_t dot = t.find('.');
    std::string_view whole = t.substr(0, dot),
                     frac = dot == std::string_view::npos ? "" : t.substr(dot + 1);
    while (!whole.empty() && whole[0] == '0') whole.remove_prefix(1);
    while (!frac.empty() && frac.back() == '0') frac.remove_suffix(1);
    return std::make_pair(whole, frac);
  };
  auto [wa, fa] = split(a);
  auto [wb, fb] = split(b);
  bool za = wa.empty() && fa.empty(), zb = wb.empty() && fb.empty();
  if (za) na = false; /* -0 is 0 */
  if (zb) nb = false;
  if (na != nb) return na ? -1 : 1;
  int c = wa.size() != wb.size() ? (wa.size() < wb.size() ? -1 : 1) : wa.compare(wb);
  if (c == 0) c = fa.compare(fb); /* (trailing zeros gone: bytewise is numeric) */
  c = c < 0 ? -1 : c > 0 ? 1 : 0;
  return na ? -c : c;
}

}  // namespace

bool range_kind(KeyKind kind) {
  return kind == KeyKind::Number || kind == KeyKind::Text || kind == KeyKind::Bool ||
         is_time_kind(kind);
}

int compare_event_texts(KeyKind kind, std::string_view a, std::string_view b) {
  if (kind == KeyKind::Number) return compare_number_texts(a, b);
  if (is_time_kind(kind)) return compare_time_texts(a, b);
  int c = a.compare(b); /* text bytewise (COLLATE "C"), false before true */
  return c < 0 ? -1 : c > 0 ? 1 : 0;
}

uint64_t interest_token(uint32_t relid, int16_t attnum, std::string_view value) {
  /* A value's texts may differ by how it was written (numeric's scale, the
   * padding of char(n) of another length): a foreign key written "3.000"
   * names the row whose key is "3".  The token is of the canonical text of
   * either kind (canonical_key_text()); that a text column's "3.0" and "3"
   * share a token only wakes a value that the event turns out not to
   * change. */
  value = canonical_key_text(KeyKind::Number, canonical_key_text(KeyKind::Char, value));
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
  return mix64(h);
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

bool Interest::add_range(uint32_t relid, int16_t attnum, KeyKind kind, bool desc, bool nulls_first,
                         std::string_view bound) {
  if (!range_kind(kind) || bound.size() > kRangeBoundBytes || nranges >= kInterestRanges)
    return false;
  add_column(relid, attnum); /* an event without the column matches */
  InterestRange &r = ranges[nranges++];
  r.relid = relid;
  r.attnum = attnum;
  r.kind = static_cast<uint8_t>(kind);
  r.desc = desc;
  r.nulls_first = nulls_first;
  r.length = static_cast<uint8_t>(bound.size());
  std::memcpy(r.bound, bound.data(), bound.size());
  return true;
}

bool Interest::add_guard(uint32_t relid, int16_t attnum, KeyKind kind, CmpOp op,
                         std::string_view value) {
  bool null_test = op == CmpOp::IsNull || op == CmpOp::NotNull;
  bool comparison = op == CmpOp::Eq || op == CmpOp::Ne || op == CmpOp::Lt || op == CmpOp::Le ||
                    op == CmpOp::Gt || op == CmpOp::Ge;
  if (!(null_test || comparison) || !range_kind(kind) || value.size() > kRangeBoundBytes ||
      nguards >= kInterestGuards || (nguards > 0 && guards[0].relid != relid))
    return false;
  InterestGuard &g = guards[nguards++];
  g.relid = relid;
  g.attnum = attnum;
  g.kind = static_cast<uint8_t>(kind);
  g.op = static_cast<uint8_t>(op);
  g.length = static_cast<uint8_t>(value.size());
  std::memcpy(g.value, value.data(), value.size());
  return true;
}

uint32_t Interest::guarded() const {
  return nguards > 0 ? guards[0].relid : 0;
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
  p.has_old = ev.op == Op::Update || ev.op == Op::Delete;
  p.has_new = ev.op == Op::Update || ev.op == Op::Insert;
  for (const ColumnChange &c : ev.columns) {
    p.attnums.push_back(c.attnum);
    for (const std::optional<std::string> &v : {c.old_value, c.new_value})
      if (v) p.tokens.emplace_back(c.attnum, interest_token(ev.relid, c.attnum, *v));
    if (c.has_old) p.values.push_back({c.attnum, true, c.old_value});
    if (c.has_new) p.values.push_back({c.attnum, false, c.new_value});
  }
  return p;
}

bool Interest::matches(const Event &ev) const {
  return matches(probe_of(ev));
}

/* Whether the row before (old) or after the change meets every guard of its table. */
bool Interest::meets_guards(const EventProbe &ev, bool old) const {
  for (int i = 0; i < std::clamp(nguards, 0, kInterestGuards); i++) {
    const InterestGuard &g = guards[i];
    if (g.relid != ev.relid) continue;
    for (const auto &[attnum, side, value] : ev.values) {
      if (attnum != g.attnum || side != old) continue;
      CmpOp op = static_cast<CmpOp>(g.op);
      if (op == CmpOp::IsNull || op == CmpOp::NotNull) {
        if (!value != (op == CmpOp::IsNull)) return false;
        continue;
      }
      if (!value) return false; /* SQL: a comparison with NULL is not true */
      std::string_view bound(g.value, std::min<size_t>(g.length, kRangeBoundBytes));
      int c = compare_event_texts(static_cast<KeyKind>(g.kind), *value, bound);
      bool holds = op == CmpOp::Eq   ? c == 0
                   : op == CmpOp::Ne ? c != 0
                   : op == CmpOp::Lt ? c < 0
                   : op == CmpOp::Le ? c <= 0
                   : op == CmpOp::Gt ? c > 0
                                     : c >= 0;
      if (!holds) return false;
    }
  }
  return true;
}

bool Interest::matches(const EventProbe &ev) const {
  if (every_event) return true;
  int nt = std::clamp(ntables, 0, kInterestTables), nw = std::clamp(nwild, 0, kInterestTables);
  int nc = std::clamp(ncolumns, 0, kInterestColumns);
  if (ev.reload) return ev.relid == 0 || contains(tables, nt, ev.relid);
  if (!contains(tables, nt, ev.relid)) return false;
  if (ev.relid == guarded() && !(ev.has_old && meets_guards(ev, true)) &&
      !(ev.has_new && meets_guards(ev, false)))
    return false;
  if (contains(wild, nw, ev.relid)) return true;
  for (int i = 0; i < std::clamp(nranges, 0, kInterestRanges); i++) {
    const InterestRange &r = ranges[i];
    if (r.relid != ev.relid) continue;
    std::string_view bound(r.bound, std::min<size_t>(r.length, kRangeBoundBytes));
    for (const auto &[attnum, old, value] : ev.values) {
      if (attnum != r.attnum) continue;
      if (!value) return true; /* NULL: it may sort anywhere the window reaches */
      int c = compare_event_texts(static_cast<KeyKind>(r.kind), *value, bound);
      if (r.desc ? c >= 0 : c <= 0) return true;
    }
  }
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
