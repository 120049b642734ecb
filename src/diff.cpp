/*
 * diff.cpp: JSON Patch between two values of one plan (see diff.hpp).
 */
#include "diff.hpp"

#include <cstring>
#include <unordered_set>

namespace ectosync {
namespace {

/* Same type and same bytes: equal content (see diff.hpp). */
bool same(const jb::Elem &a, const jb::Elem &b) {
  return a.type == b.type && a.len == b.len && (a.len == 0 || !std::memcmp(a.data, b.data, a.len));
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

/* The primary key of a row as comparable bytes: type, length, content. */
std::string Diff::key_bytes(jb::View row, const PlanNode &node) const {
  std::string out;
  for (const Column &c : node.table.pk) {
    std::optional<jb::Elem> e = row.get(c.name);
    uint32_t type = e ? e->type : 0xffffffff, len = e ? e->len : 0;
    out.append(reinterpret_cast<const char *>(&type), sizeof type);
    out.append(reinterpret_cast<const char *>(&len), sizeof len);
    if (e && len > 0) out.append(e->data, len);
  }
  return out;
}

void Diff::values(jb::View old_value, jb::View new_value) {
  /* Keys of both objects, merged in jsonb's key order. */
  uint32_t i = 0, j = 0;
  while (i < old_value.size() || j < new_value.size()) {
    int c = i >= old_value.size()   ? 1
            : j >= new_value.size() ? -1
                                    : jb::compare_keys(old_value.key(i), new_value.key(j));
    if (c < 0) {
      if (old_value.key(i) != "seq")
        op("remove", "/" + pointer_token(old_value.key(i)), std::nullopt);
      i++;
    } else if (c > 0) {
      jb::Elem v = new_value.value(j);
      if (new_value.key(j) != "seq")
        op("add", "/" + pointer_token(new_value.key(j)), jb::Node::copy(v));
      j++;
    } else {
      std::string_view key = old_value.key(i);
      jb::Elem a = old_value.value(i), b = new_value.value(j);
      if (key == "rows" && jb::View(a).is_array() && jb::View(b).is_array())
        list("/rows", jb::View(a), jb::View(b), *plan_.root);
      else if (key != "seq" && !same(a, b))
        op("replace", "/" + pointer_token(key), jb::Node::copy(b));
      i++;
      j++;
    }
  }
}

/*
 * Both lists are ordered by primary key, so the rows they share come in the
 * same order: walk both, removing rows only the old list has and adding
 * rows only the new one has, at the index the patched list has reached.
 */
void Diff::list(const std::string &path, jb::View old_list, jb::View new_list,
                const PlanNode &node) {
  uint32_t n_old = old_list.size(), n_new = new_list.size();
  /* Most changes touch a row or two: skip the equal rows at both ends
   * without reading any key. */
  uint32_t lo = 0;
  while (lo < n_old && lo < n_new && same(old_list.at(lo), new_list.at(lo))) lo++;
  while (n_old > lo && n_new > lo && same(old_list.at(n_old - 1), new_list.at(n_new - 1))) {
    n_old--;
    n_new--;
  }
  std::vector<std::string> old_keys(n_old), new_keys(n_new);
  std::unordered_set<std::string> in_old, in_new;
  for (uint32_t i = lo; i < n_old; i++) {
    old_keys[i] = key_bytes(jb::View(old_list.at(i)), node);
    in_old.insert(old_keys[i]);
  }
  for (uint32_t j = lo; j < n_new; j++) {
    new_keys[j] = key_bytes(jb::View(new_list.at(j)), node);
    in_new.insert(new_keys[j]);
  }
  uint32_t i = lo, j = lo, at = lo;
  while (i < n_old || j < n_new) {
    if (i < n_old && !in_new.count(old_keys[i])) {
      op("remove", path + "/" + std::to_string(at), std::nullopt);
      i++;
    } else if (j < n_new && !in_old.count(new_keys[j])) {
      jb::Elem v = new_list.at(j);
      op("add", path + "/" + std::to_string(at), jb::Node::copy(v));
      at++;
      j++;
    } else if (i < n_old && j < n_new && old_keys[i] == new_keys[j]) {
      jb::Elem a = old_list.at(i), b = new_list.at(j);
      if (!same(a, b)) row(path + "/" + std::to_string(at), jb::View(a), jb::View(b), node);
      at++;
      i++;
      j++;
    } else {
      /* Not ordered alike (cannot happen for values of one plan): the
       * whole list, which is right whatever came before. */
      jb::Node whole = jb::Node::array();
      for (uint32_t k = 0; k < new_list.size(); k++) whole.push(jb::Node::copy(new_list.at(k)));
      op("replace", path, std::move(whole));
      return;
    }
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
  if (a.is_object() && b.is_object() && key_bytes(a, node) == key_bytes(b, node))
    row(path, a, b, node);
  else
    op("replace", path, jb::Node::copy(new_row));
}

}  // namespace ectosync
