/*
 * plan.cpp: the few functions of plan.hpp's value shape.  Pure C++.
 */
#include "core/plan.hpp"

#include <algorithm>

namespace ectosync {

const char *assoc_kind_name(AssocKind kind) {
  switch (kind) {
    case AssocKind::BelongsTo:
      return "belongs_to";
    case AssocKind::HasMany:
      return "has_many";
    case AssocKind::HasOne:
      return "has_one";
    case AssocKind::ManyToMany:
      return "many_to_many";
  }
  return "unknown";
}

namespace {

/* Appends relid unless present. */
void add_unique(std::vector<uint32_t> &out, uint32_t relid) {
  if (std::find(out.begin(), out.end(), relid) == out.end()) out.push_back(relid);
}

/* Depth first, each table once, in the order first met. */
void collect_tables(const PlanNode &node, std::vector<uint32_t> &out) {
  add_unique(out, node.table.relid);
  for (const auto &assoc : node.assocs) {
    if (assoc.join) add_unique(out, assoc.join->relid);
    if (assoc.target) collect_tables(*assoc.target, out);
  }
}

}  // namespace

std::vector<uint32_t> Plan::tables() const {
  std::vector<uint32_t> out;
  if (root) collect_tables(*root, out);
  return out;
}

}  // namespace ectosync

namespace ectosync {
namespace {

/* A time text split for ordering: class (0 -infinity, 1 finite, 2
 * infinity, 3 malformed), astronomical year, and what follows the year. */
struct TimeParts {
  int cls = 3;
  long long year = 0;
  std::string_view rest;
};

TimeParts time_parts(std::string_view text) {
  TimeParts p;
  if (text == "-infinity") {
    p.cls = 0;
    return p;
  }
  if (text == "infinity") {
    p.cls = 2;
    return p;
  }
  bool bc = text.size() > 3 && text.substr(text.size() - 3) == " BC";
  if (bc) text.remove_suffix(3);
  size_t digits = 0;
  long long year = 0;
  while (digits < text.size() && digits < 12 && text[digits] >= '0' && text[digits] <= '9')
    year = year * 10 + (text[digits++] - '0');
  if (digits < 4 || digits >= text.size() || text[digits] != '-') {
    p.rest = text;
    return p;
  }
  p.cls = 1;
  p.year = bc ? 1 - year : year; /* 1 BC is year 0 */
  p.rest = text.substr(digits);
  return p;
}

int sign(int c) {
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

}  // namespace

/*
 * Past the year, "-MM-DD", "THH:MM:SS", an optional fraction without
 * trailing zeros and an optional "+00:00" order by their bytes: '+' sorts
 * before '.' and the digits, so a whole second comes before its fractions.
 */
int compare_time_texts(std::string_view a, std::string_view b) {
  TimeParts pa = time_parts(a), pb = time_parts(b);
  if (pa.cls != pb.cls) return pa.cls < pb.cls ? -1 : 1;
  if (pa.cls == 3) return sign(a.compare(b));
  if (pa.year != pb.year) return pa.year < pb.year ? -1 : 1;
  return sign(pa.rest.compare(pb.rest));
}

int compare_char_texts(std::string_view a, std::string_view b) {
  size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; i++) {
    unsigned char x = i < a.size() ? a[i] : ' ', y = i < b.size() ? b[i] : ' ';
    if (x != y) return x < y ? -1 : 1;
  }
  return 0;
}

std::string_view canonical_key_text(KeyKind kind, std::string_view text) {
  if (kind == KeyKind::Char) {
    size_t end = text.find_last_not_of(' ');
    return text.substr(0, end == std::string_view::npos ? 0 : end + 1);
  }
  size_t dot = text.find('.');
  if (kind != KeyKind::Number || dot == std::string_view::npos ||
      text.find_first_not_of("0123456789", dot + 1) != std::string_view::npos)
    return text;
  size_t end = text.find_last_not_of('0');
  return text.substr(0, end == dot ? dot : end + 1);
}

}  // namespace ectosync
