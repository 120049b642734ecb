/*
 * keys.cpp: key values of rows (see keys.hpp).
 */
#include "value/keys.hpp"

#include "pg/pg_boundary.hpp"

extern "C" {
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/numeric.h"
}

#include <algorithm>

namespace ectosync {
namespace {

/* numeric_in of a key's text, for numeric comparisons. */
Numeric parse_numeric(const std::string &text) {
  return pg_call([&] {
    return DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(text.c_str()),
                                               ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
  });
}

/* A Number column's value in a row as a numeric.  to_jsonb renders an oid
 * as a string of digits ("10" comes after "9"), and a numeric's NaN and
 * infinities as strings (-Infinity first, NaN last): they order as numbers,
 * as load's ORDER BY orders them, not as strings.  nullopt: not a
 * numeric value. */
std::optional<Numeric> elem_numeric(const jb::Elem &e) {
  if (e.is_numeric()) return e.numeric();
  if (!e.is_string()) return std::nullopt;
  std::string_view s = e.str();
  bool oid = !s.empty() && s.size() <= 10 &&
             std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!oid && s != "NaN" && s != "Infinity" && s != "-Infinity") return std::nullopt;
  return parse_numeric(std::string(s));
}

}  // namespace

Key make_key(const std::vector<Column> &cols, const Texts &texts) {
  Key key(cols.size());
  for (size_t i = 0; i < cols.size() && i < texts.size(); i++) {
    key[i].text = texts[i];
    if (texts[i] && cols[i].kind == KeyKind::Number) key[i].num = parse_numeric(*texts[i]);
  }
  return key;
}

int compare_elem_part(KeyKind kind, const std::optional<jb::Elem> &e, const Part &p) {
  bool e_null = !e || e->is_null();
  if (e_null || !p.text) return e_null == !p.text ? 0 : (e_null ? -1 : 1);
  if (kind == KeyKind::Number && p.num)
    if (std::optional<Numeric> n = elem_numeric(*e)) return jb::compare_numeric(*n, p.num);
  if (e->is_numeric()) return jb::compare_bytes(jb::numeric_text(e->numeric()), *p.text);
  if (e->is_bool()) {
    bool a = e->type == JENTRY_ISBOOL_TRUE, b = *p.text == "true";
    return a == b ? 0 : (a ? 1 : -1);
  }
  if (!e->is_string()) return -1;
  if (is_time_kind(kind)) return compare_time_texts(e->str(), *p.text);
  if (kind == KeyKind::Char) return compare_char_texts(e->str(), *p.text);
  return jb::compare_bytes(e->str(), *p.text);
}

int compare_elems(KeyKind kind, const std::optional<jb::Elem> &a,
                  const std::optional<jb::Elem> &b) {
  bool a_null = !a || a->is_null(), b_null = !b || b->is_null();
  if (a_null || b_null) return a_null == b_null ? 0 : (a_null ? -1 : 1);
  if (kind == KeyKind::Number) {
    std::optional<Numeric> x = elem_numeric(*a), y = elem_numeric(*b);
    if (x && y) return jb::compare_numeric(*x, *y);
  }
  if (a->is_numeric() && b->is_numeric()) return jb::compare_numeric(a->numeric(), b->numeric());
  if (a->is_string() && b->is_string()) {
    if (is_time_kind(kind)) return compare_time_texts(a->str(), b->str());
    if (kind == KeyKind::Char) return compare_char_texts(a->str(), b->str());
    return jb::compare_bytes(a->str(), b->str());
  }
  /* booleans: JENTRY_ISBOOL_FALSE < JENTRY_ISBOOL_TRUE; mixed types by type */
  return a->type == b->type ? 0 : (a->type < b->type ? -1 : 1);
}

std::optional<std::string> elem_text(const jb::Elem &e) {
  if (e.is_numeric()) return jb::numeric_text(e.numeric());
  if (e.is_string()) return std::string(e.str());
  if (e.is_bool()) return std::string(e.type == JENTRY_ISBOOL_TRUE ? "true" : "false");
  return std::nullopt;
}

Texts row_texts(jb::View row, const std::vector<Column> &cols) {
  Texts out;
  for (const Column &c : cols) {
    std::optional<jb::Elem> e = row.get(c.name);
    out.push_back(e ? elem_text(*e) : std::nullopt);
  }
  return out;
}

bool has_null(const Texts &t) {
  return std::any_of(t.begin(), t.end(), [](const auto &v) { return !v; });
}

bool same_texts(const std::vector<Column> &cols, const Texts &a, const Texts &b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    if (!a[i] || !b[i] || *a[i] == *b[i]) {
      if (a[i].has_value() != b[i].has_value()) return false;
      continue;
    }
    if (i >= cols.size()) return false;
    if (cols[i].kind == KeyKind::Char) {
      if (compare_char_texts(*a[i], *b[i]) != 0) return false;
      continue;
    }
    if (cols[i].kind != KeyKind::Number) return false;
    if (jb::compare_numeric(parse_numeric(*a[i]), parse_numeric(*b[i])) != 0) return false;
  }
  return true;
}

int compare_row_key(jb::View row, const std::vector<Column> &cols, const Key &key) {
  for (size_t i = 0; i < cols.size(); i++) {
    int c = compare_elem_part(cols[i].kind, row.get(cols[i].name), key[i]);
    if (c != 0) return c;
  }
  return 0;
}

std::pair<uint32_t, bool> search(jb::View list, const std::vector<Column> &pk, const Key &key) {
  uint32_t lo = 0, hi = list.size();
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    jb::View row(list.at(mid));
    int c = row.valid() ? compare_row_key(row, pk, key) : -1;
    if (c == 0) return {mid, true};
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return {lo, false};
}

}  // namespace ectosync
