/*
 * diff.cpp: JSON Patch between two values of one plan (see diff.hpp).
 */
#include "value/diff.hpp"
#include "value/keys.hpp"

#include <algorithm>
#include <map>
#include <tuple>
#include <cstring>

namespace ectosync {
namespace {

/* Same type and same bytes: equal content (see diff.hpp). */
bool same(const jb::Elem &a, const jb::Elem &b) {
  return a.type == b.type && a.len == b.len && (a.len == 0 || !std::memcmp(a.data, b.data, a.len));
}

/*
 * How many leading elements two arrays share byte for byte, found without
 * visiting them one by one: the JEntries of equal leading elements are
 * equal, and so then are their offsets, so one memcmp covers their bytes.
 */
uint32_t equal_prefix(jb::View a, jb::View b) {
  uint32_t n = std::min(a.size(), b.size()), j = 0;
  const JEntry *ea = a.container()->children, *eb = b.container()->children;
  while (j < n && ea[j] == eb[j]) j++;
  uint32_t bytes = a.offset(j);
  const char *da = a.data(), *db = b.data();
  if (std::memcmp(da, db, bytes) == 0) return j;
  uint32_t first = static_cast<uint32_t>(std::mismatch(da, da + bytes, db).first - da);
  /* the element holding the first differing byte: the last one starting at or before it */
  uint32_t lo = 0, hi = j;
  while (hi - lo > 1) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (a.offset(mid) <= first)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

const Assoc *find_assoc(const PlanNode &node, std::string_view name) {
  for (const Assoc &a : node.assocs)
    if (a.name == name) return &a;
  return nullptr;
}

}  // namespace

std::string pointer_token(std::string_view key) {
  std::string out;
  out.reserve(key.size());
  for (char c : key) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

void Diff::op(const char *name, const std::string &path, std::optional<jb::Node> value) {
  paths_.push_back(path);
  jb::Node o = jb::Node::object();
  o.set("op", jb::Node::string(name));
  o.set("path", jb::Node::string(paths_.back()));
  if (value) o.set("value", std::move(*value));
  ops_.push(std::move(o));
}

void Diff::parts(const std::vector<Jsonb *> &old_parts, const std::vector<Jsonb *> &new_parts,
                 const TouchedRows &touched) {
  /* A part's rows start where the rows of the parts before it end, as
   * the operations before its own have left them. */
  uint32_t base = 0;
  for (size_t i = 0; i < old_parts.size() && i < new_parts.size(); i++) {
    jb::View before(old_parts[i]), after(new_parts[i]);
    if (old_parts[i] != new_parts[i]) {
      /* (sync_parts() records every part; a merge would do without) */
      if (i < touched.size() && plan_.root->query.empty())
        rows("/rows", before, after, *plan_.root, base, touched[i]);
      else
        list("/rows", before, after, *plan_.root, base);
    }
    base += after.size();
  }
}

/*
 * A list where only the touched rows changed (the others are the same rows
 * in the same order).  When none entered or left, each changed row is where
 * it was: diffed by position.  Otherwise each key is looked up in both
 * lists, and the operations follow key order: at a key's turn the patched
 * list holds the new rows below it and the old rows from it on, so its
 * index is where it is (or would be) in the new list; of two keys at one
 * index, the one the new list lacks goes first.
 */
void Diff::rows(const std::string &path, jb::View old_list, jb::View new_list, const PlanNode &node,
                uint32_t base, const PartTouch &touch) {
  if (!touch.moved && old_list.size() == new_list.size()) {
    std::vector<uint32_t> at = touch.rows;
    std::sort(at.begin(), at.end());
    at.erase(std::unique(at.begin(), at.end()), at.end());
    for (uint32_t p : at) {
      if (p >= new_list.size()) continue;
      jb::Elem a = old_list.at(p), b = new_list.at(p);
      if (!same(a, b)) row(path + "/" + std::to_string(base + p), jb::View(a), jb::View(b), node);
    }
    return;
  }
  struct Place {
    uint32_t at; /* index in the new list (found or insertion point) */
    bool in_new;
    uint32_t old_at; /* index in the old list (found or insertion point) */
    bool in_old;
    bool operator<(const Place &o) const {
      return std::tie(at, in_new, old_at, in_old) < std::tie(o.at, o.in_new, o.old_at, o.in_old);
    }
    bool operator==(const Place &o) const {
      return at == o.at && in_new == o.in_new && old_at == o.old_at && in_old == o.in_old;
    }
  };
  std::vector<Place> places;
  for (const Texts &texts : touch.keys) {
    Key key = make_key(node.table.pk, texts);
    auto [at, in_new] = search(new_list, node.table.pk, key);
    auto [old_at, in_old] = search(old_list, node.table.pk, key);
    if (in_new || in_old) places.push_back(Place{at, in_new, old_at, in_old});
  }
  std::sort(places.begin(), places.end());
  places.erase(std::unique(places.begin(), places.end()), places.end());
  for (const Place &p : places) {
    std::string here = path + "/" + std::to_string(base + p.at);
    if (!p.in_new) {
      op("remove", here, std::nullopt);
    } else if (!p.in_old) {
      op("add", here, jb::Node::copy(new_list.at(p.at)));
    } else {
      jb::Elem a = old_list.at(p.old_at), b = new_list.at(p.at);
      if (!same(a, b)) row(here, jb::View(a), jb::View(b), node);
    }
  }
}

/*
 * The order of two rows of node by primary key, as load() orders them:
 * numbers numerically, times in time order, other strings bytewise, false
 * before true (JENTRY_ISBOOL_FALSE < JENTRY_ISBOOL_TRUE).
 */
int Diff::compare_pk(jb::View a, jb::View b, const PlanNode &node) const {
  for (const Column &c : node.table.pk)
    if (int cmp = compare_elems(c.kind, a.get(c.name), b.get(c.name))) return cmp;
  return 0;
}

/*
 * Both lists are ordered by primary key: a merge.  Rows equal byte for
 * byte cost a memcmp; rows only the old list has are removed and rows only
 * the new one has are added, at the index the patched list has reached.
 */
void Diff::list(const std::string &path, jb::View old_list, jb::View new_list, const PlanNode &node,
                uint32_t base) {
  if (node.query.ordered()) return ordered_list(path, old_list, new_list, node, base);
  jb::Cursor olds(old_list), news(new_list);
  uint32_t skip = equal_prefix(old_list, new_list), at = base + skip;
  olds.seek(skip);
  news.seek(skip);
  std::optional<jb::Elem> a, b;
  auto next_old = [&] { a = olds.done() ? std::nullopt : std::optional<jb::Elem>(olds.next()); };
  auto next_new = [&] { b = news.done() ? std::nullopt : std::optional<jb::Elem>(news.next()); };
  next_old();
  next_new();
  while (a || b) {
    int order;
    if (a && b)
      order = same(*a, *b) ? 0 : compare_pk(jb::View(*a), jb::View(*b), node);
    else
      order = a ? -1 : 1;
    if (order < 0) {
      op("remove", path + "/" + std::to_string(at), std::nullopt);
      next_old();
    } else if (order > 0) {
      op("add", path + "/" + std::to_string(at), jb::Node::copy(*b));
      at++;
      next_new();
    } else {
      if (!same(*a, *b)) row(path + "/" + std::to_string(at), jb::View(*a), jb::View(*b), node);
      at++;
      next_old();
      next_new();
    }
  }
}

/*
 * Lists in a query's order (query.hpp): rows are matched by primary key.
 * Rows the new list lacks are removed (from the last, so that the indexes
 * before stay); then, index by index, the row the new list has there is
 * diffed when it is already there, moved there (removed, then added with
 * its new content) when it is further down, or added.
 */
void Diff::ordered_list(const std::string &path, jb::View old_list, jb::View new_list,
                        const PlanNode &node, uint32_t base) {
  uint32_t skip = equal_prefix(old_list, new_list);
  const std::vector<Column> &pk = node.table.pk;
  std::map<Texts, uint32_t> in_new;
  for (uint32_t j = skip; j < new_list.size(); j++)
    in_new.emplace(row_texts(jb::View(new_list.at(j)), pk), j);
  std::vector<uint32_t> held; /* old indexes, as the patched list holds them from skip on */
  for (uint32_t i = old_list.size(); i-- > skip;) {
    if (in_new.count(row_texts(jb::View(old_list.at(i)), pk)))
      held.insert(held.begin(), i);
    else
      op("remove", path + "/" + std::to_string(base + i), std::nullopt);
  }
  for (uint32_t j = skip, k = 0; j < new_list.size(); j++, k++) {
    std::string here = path + "/" + std::to_string(base + j);
    jb::Elem b = new_list.at(j);
    Texts key = row_texts(jb::View(b), pk);
    auto same_key = [&](uint32_t i) { return row_texts(jb::View(old_list.at(i)), pk) == key; };
    if (k < held.size() && same_key(held[k])) {
      jb::Elem a = old_list.at(held[k]);
      if (!same(a, b)) row(here, jb::View(a), jb::View(b), node);
      continue;
    }
    auto further =
        std::find_if(held.begin() + std::min<size_t>(k, held.size()), held.end(), same_key);
    if (further != held.end()) {
      op("remove", path + "/" + std::to_string(base + skip + (further - held.begin())),
         std::nullopt);
      held.erase(further);
    }
    op("add", here, jb::Node::copy(b));
    held.insert(held.begin() + std::min<size_t>(k, held.size()), UINT32_MAX);
  }
}

void Diff::row(const std::string &path, jb::View old_row, jb::View new_row, const PlanNode &node) {
  if (!old_row.is_object() || !new_row.is_object()) return;
  uint32_t i = 0, j = 0;
  while (i < old_row.size() || j < new_row.size()) {
    int c = i >= old_row.size()   ? 1
            : j >= new_row.size() ? -1
                                  : jb::compare_keys(old_row.key(i), new_row.key(j));
    if (c < 0) {
      op("remove", path + "/" + pointer_token(old_row.key(i)), std::nullopt);
      i++;
      continue;
    }
    if (c > 0) {
      jb::Elem v = new_row.value(j);
      op("add", path + "/" + pointer_token(new_row.key(j)), jb::Node::copy(v));
      j++;
      continue;
    }
    std::string_view key = old_row.key(i);
    jb::Elem a = old_row.value(i), b = new_row.value(j);
    i++;
    j++;
    if (same(a, b)) continue;
    std::string sub = path + "/" + pointer_token(key);
    const Assoc *assoc = find_assoc(node, key);
    if (assoc && assoc->is_many() && jb::View(a).is_array() && jb::View(b).is_array())
      list(sub, jb::View(a), jb::View(b), *assoc->target);
    else if (assoc && !assoc->is_many())
      one(sub, a, b, *assoc->target);
    else
      op("replace", sub, jb::Node::copy(b));
  }
}

/* A belongs_to/has_one: the same row changed, or another row (or none). */
void Diff::one(const std::string &path, const jb::Elem &old_row, const jb::Elem &new_row,
               const PlanNode &node) {
  jb::View a(old_row), b(new_row);
  if (a.is_object() && b.is_object() && compare_pk(a, b, node) == 0)
    row(path, a, b, node);
  else
    op("replace", path, jb::Node::copy(new_row));
}

}  // namespace ectosync
