/*
 * parts.cpp: a held value as a head and parts of root rows (see parts.hpp).
 */
#include "value/parts.hpp"

#include "value/jsonb_writer.hpp"
#include "pg/pg_boundary.hpp"
#include "settings.hpp"

#include <algorithm>
#include <optional>

namespace ectosync {
namespace {

/* Rows [from, to) of the array list as a jsonb array of their own. */
Jsonb *rows_jsonb(jb::View list, uint32_t from, uint32_t to) {
  jb::Node rows = jb::Node::array();
  if (to > from) rows.push(jb::Node::copy_range(list, from, to));
  return jb::to_jsonb(rows);
}

/* The size parts aim for: small enough to rewrite, large enough to be few. */
size_t part_bytes() {
  return static_cast<size_t>(settings.held_part_bytes);
}

/*
 * Whether the root rows of a value (or its head) stay in one part: a root
 * "$query" may order them by other columns than the key, which the routes
 * of sync_parts() follow, and a window is small.
 */
bool kept_whole(const Jsonb *value) {
  std::optional<jb::Elem> assocs = jb::View(value).get("assocs");
  return assocs && jb::View(*assocs).is_object() && jb::View(*assocs).get("$query");
}

/* The rows of list cut into parts of about part_bytes() (whole: one
 * part), appended to parts. */
void cut(jb::View list, std::vector<Jsonb *> &parts, bool whole = false) {
  uint32_t start = 0, n = list.size();
  for (uint32_t i = 0; i < n; i++)
    if (i + 1 == n || (!whole && list.offset(i + 1) - list.offset(start) >= part_bytes())) {
      parts.push_back(rows_jsonb(list, start, i + 1));
      start = i + 1;
    }
}

/* The rows of a and then of b, as one part. */
Jsonb *concat(const Jsonb *a, const Jsonb *b) {
  jb::Node rows = jb::Node::array();
  for (const Jsonb *p : {a, b}) {
    jb::View v(p);
    if (v.size() > 0) rows.push(jb::Node::copy_range(v, 0, v.size()));
  }
  return jb::to_jsonb(rows);
}

/* Frees a part (palloc'd in a held value's context). */
void release(Jsonb *part) {
  pg_call([&] { pfree(part); });
}

}  // namespace

PartedValue split_value(const Jsonb *value) {
  jb::View v(value);
  PartedValue out;
  jb::Node head = jb::Node::object();
  for (uint32_t i = 0; i < v.size(); i++) {
    if (v.key(i) == "rows") {
      cut(jb::View(v.value(i)), out.parts, kept_whole(value));
      head.set("rows", jb::Node::array());
    } else {
      head.set(v.key(i), jb::Node::copy(v.value(i)));
    }
  }
  out.head = jb::to_jsonb(head);
  if (out.parts.empty()) out.parts.push_back(rows_jsonb(jb::View(), 0, 0));
  return out;
}

Jsonb *join_value(const PartedValue &value) {
  jb::View head(value.head);
  jb::Node out = jb::Node::object();
  for (uint32_t i = 0; i < head.size(); i++) {
    if (head.key(i) != "rows") {
      out.set(head.key(i), jb::Node::copy(head.value(i)));
      continue;
    }
    jb::Node rows = jb::Node::array();
    for (const Jsonb *p : value.parts) {
      jb::View part(p);
      if (part.size() > 0) rows.push(jb::Node::copy_range(part, 0, part.size()));
    }
    out.set("rows", std::move(rows));
  }
  return jb::to_jsonb(out);
}

size_t value_bytes(const PartedValue &value) {
  size_t bytes = VARSIZE(value.head);
  for (const Jsonb *p : value.parts) bytes += VARSIZE(p);
  return bytes;
}

void rebalance(PartedValue &value, bool free_replaced) {
  if (kept_whole(value.head)) return;
  const std::vector<Jsonb *> given = value.parts;
  const size_t small = part_bytes() / 4;
  std::vector<Jsonb *> out, made, dropped;
  auto make = [&](Jsonb *p) {
    made.push_back(p);
    return p;
  };
  try {
    for (Jsonb *p : value.parts) {
      if (jb::View(p).size() == 0) {
        dropped.push_back(p);
      } else if (VARSIZE(p) > 2 * part_bytes() && jb::View(p).size() > 1) {
        size_t first = made.size();
        cut(jb::View(p), made); /* (what it cut before failing is freed below) */
        out.insert(out.end(), made.begin() + first, made.end());
        dropped.push_back(p);
      } else if (VARSIZE(p) < small && !out.empty() && VARSIZE(out.back()) < small) {
        dropped.push_back(p);
        dropped.push_back(out.back());
        out.back() = make(concat(out.back(), p));
      } else {
        out.push_back(p);
      }
    }
    if (out.empty()) out.push_back(make(rows_jsonb(jb::View(), 0, 0)));
  } catch (...) {
    /* the value stays as it was */
    for (Jsonb *p : made) release(p);
    throw;
  }
  /* Only now are the replaced parts freed (merged ones may have been made
   * here: those always are). */
  for (Jsonb *p : dropped)
    if (free_replaced || std::find(given.begin(), given.end(), p) == given.end()) release(p);
  value.parts = std::move(out);
}

}  // namespace ectosync
