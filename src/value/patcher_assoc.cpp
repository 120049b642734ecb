/*
 * patcher_assoc.cpp: the Patcher's rows and associations: a row's columns
 * and nested lists, a belongs_to/has_one object, and the links that a
 * many_to_many join table's rows make (patcher.cpp patches the lists).
 */
#include "value/catalog.hpp"
#include "value/keys.hpp"
#include "value/patcher.hpp"
#include "value/query_eval.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <utility>
#include <vector>

namespace ectosync {

namespace {

/*
 * Whether the same (owner, target) pair may stand in several join rows: the
 * join table's key is not made of the pair's columns (a join table with a
 * key of its own, defined explicitly).
 */
bool pair_may_repeat(const Assoc &a) {
  auto in_pair = [&](const Column &k) {
    auto same = [&](const Column &c) { return c.attnum == k.attnum; };
    return std::any_of(a.join_owner_cols.begin(), a.join_owner_cols.end(), same) ||
           std::any_of(a.join_target_cols.begin(), a.join_target_cols.end(), same);
  };
  return !std::all_of(a.join->pk.begin(), a.join->pk.end(), in_pair);
}

}  // namespace

/*
 * Whether a join row other than the changed ones links parent and target
 * still, when the pair's link went (a join table whose key is not the
 * pair may link it twice, and load() asks whether any row does).  What
 * this reads decides the value for good: hence no transaction that wrote
 * or holds a snapshot patches one (refuse_uncommitted_reads).
 */
bool Patcher::linked_still(const Assoc &a, jb::View parent, const Texts &target) {
  return pair_may_repeat(a) && linked(a, row_texts(parent, a.owner_cols), target);
}

/*
 * Whether target row s may be linked where it was not: the event moved its
 * columns that many_to_many a's join rows name (a key other than its
 * primary key, or its primary key without a cascade), so the lists that
 * held it may not link it now and others may; or inserted it while join
 * rows name it already (a join table without a foreign key to it, or with
 * a deferred one: the join row came first).  The latter is one query per
 * row and association, asked only of an INSERT.
 */
bool Patcher::link_moved(const Assoc &a, const RowState &s) {
  if (!s.exists) return false;
  if (ev_.op == Op::Insert) {
    Texts target = row_texts(s.row, a.target_cols);
    auto [it, fresh] = named_by_join_.try_emplace({&a, target}, false);
    if (fresh && !has_null(target)) {
      bare_nodes_.push_back(std::make_unique<PlanNode>());
      bare_nodes_.back()->table = *a.join;
      jb::View rows = rows_where(*bare_nodes_.back(), a.join_target_cols, target);
      it->second = rows.is_array() && rows.size() > 0;
    }
    return it->second;
  }
  if (ev_.op != Op::Update) return false;
  std::optional<Texts> old = old_texts(a.target_cols);
  return old && !same_texts(a.target_cols, *old, row_texts(s.row, a.target_cols));
}

/*
 * The target rows that the changed join rows of many_to_many a link to
 * parent, or linked to it: each target key, with whether a join row links
 * it now.
 */
std::vector<std::pair<Texts, bool>> Patcher::join_targets(const Assoc &a, jb::View parent) {
  /* (target key, linked now) for each join row state the event names */
  std::vector<std::pair<Texts, bool>> targets;
  Texts owner = row_texts(parent, a.owner_cols);
  if (has_null(owner)) return targets;
  auto note = [&](const Texts &target, bool linked) {
    for (auto &t : targets)
      if (same_texts(a.join_target_cols, t.first, target)) {
        t.second = t.second || linked;
        return;
      }
    targets.emplace_back(target, linked);
  };
  /* the event's old and new (owner, target) pairs: this parent's links */
  for (int side = 0; side < 2; side++) {
    Texts o, t;
    bool ok = true;
    for (const Column &c : a.join_owner_cols) {
      const ColumnChange *cc = ev_.column(c.attnum);
      if (!cc || !(side == 0 ? cc->has_old : cc->has_new)) ok = false;
      if (ok) o.push_back(side == 0 ? cc->old_value : cc->new_value);
    }
    for (const Column &c : a.join_target_cols) {
      const ColumnChange *cc = ev_.column(c.attnum);
      if (!cc || !(side == 0 ? cc->has_old : cc->has_new)) ok = false;
      if (ok) t.push_back(side == 0 ? cc->old_value : cc->new_value);
    }
    if (ok && same_texts(a.join_owner_cols, o, owner) && !has_null(t)) note(t, false);
  }
  for (const RowState &s : states_) {
    if (!s.exists) continue;
    if (!same_texts(a.join_owner_cols, row_texts(s.row, a.join_owner_cols), owner)) continue;
    Texts t = row_texts(s.row, a.join_target_cols);
    if (!has_null(t)) note(t, true);
  }
  return targets;
}

/*
 * A many_to_many list under parent when T is its join table: the target
 * rows that the changed join rows link to this parent are added when a join
 * row links them now, removed when no join row does.
 */
void Patcher::patch_join(jb::View list, const Assoc &a, jb::View parent,
                         std::map<uint32_t, std::optional<jb::Node>> &mods,
                         std::vector<std::pair<uint32_t, jb::Node>> &inserts) {
  std::vector<std::pair<Texts, bool>> targets = join_targets(a, parent);
  const PlanNode &target = *a.target;
  bool by_pk = same_columns(a.target_cols, target.table.pk);
  for (const auto &[tkey, linked] : targets) {
    Key key = make_key(a.target_cols, tkey);
    std::optional<uint32_t> at;
    uint32_t pos = list.size();
    if (by_pk) {
      auto [idx, found] = search(list, target.table.pk, key);
      pos = idx;
      if (found) at = idx;
    } else {
      for (uint32_t i = 0; i < list.size() && !at; i++)
        if (row_matches_key(jb::View(list.at(i)), a.target_cols, key)) at = i;
    }
    if (at && !linked) {
      if (linked_still(a, parent, tkey)) continue;
      mods[*at] = std::nullopt;
    } else if (!at && linked) {
      std::optional<jb::Elem> row;
      if (by_pk && target.assocs.empty() && !rls(target.table.relid)) {
        RowState s = read_row(target.table, tkey);
        if (s.exists && !query_matches(target.query, s.row)) continue;
        if (std::optional<jb::Node> n = build_row(target, s)) {
          inserts.emplace_back(pos, std::move(*n));
          continue;
        }
      }
      row = load_one(target, a.target_cols, tkey);
      if (!row) continue;
      if (!by_pk) {
        Key pk = make_key(target.table.pk, row_texts(jb::View(*row), target.table.pk));
        pos = search(list, target.table.pk, pk).first;
      }
      inserts.emplace_back(pos, jb::Node::copy(*row));
    }
  }
}

/*
 * A row of node n: with state, its columns become the current ones (its
 * association keys are kept, rebuilt where its owner columns changed);
 * associations that involve T are patched.  nullopt: unchanged.
 */
std::optional<jb::Node> Patcher::patch_row(jb::Elem elem, const PlanNode &n,
                                           const RowState *state) {
  jb::View row(elem);
  if (!row.is_object()) return std::nullopt;
  jb::View cols = state ? state->row : row; /* the current columns */
  std::vector<std::pair<const Assoc *, std::optional<jb::Node>>> changed;
  for (const Assoc &a : n.assocs) {
    std::optional<jb::Elem> old = row.get(a.name);
    bool owner_changed =
        state && !rows_match(row, a.owner_cols, cols, a.owner_cols) &&
        !(has_null(row_texts(row, a.owner_cols)) && has_null(row_texts(cols, a.owner_cols)));
    if (owner_changed) {
      changed.emplace_back(&a, rebuild_assoc(a, cols));
      continue;
    }
    if (!assoc_involves(a)) continue;
    std::optional<jb::Node> r;
    if (a.is_many()) {
      if (old)
        r = patch_list(
            jb::View(*old), *a.target,
            ListCtx{a.kind == AssocKind::HasMany ? ListCtx::HasMany : ListCtx::ManyToMany, &a,
                    cols});
    } else {
      r = patch_one(a, old, cols);
    }
    if (r) changed.emplace_back(&a, std::move(r));
  }
  if (!state && changed.empty()) return std::nullopt;

  jb::Node out = jb::Node::object();
  auto is_assoc = [&](std::string_view key) {
    for (const Assoc &a : n.assocs)
      if (a.name == key) return true;
    return false;
  };
  for (uint32_t i = 0; i < cols.size(); i++)
    if (!is_assoc(cols.key(i))) out.set(cols.key(i), jb::Node::copy(cols.value(i)));
  for (const Assoc &a : n.assocs) {
    auto it =
        std::find_if(changed.begin(), changed.end(), [&](const auto &c) { return c.first == &a; });
    if (it != changed.end()) {
      out.set(a.name, std::move(*it->second));
    } else if (std::optional<jb::Elem> old = row.get(a.name)) {
      out.set(a.name, jb::Node::copy(*old));
    }
  }
  return out;
}

/*
 * An association whose owner columns changed: read again, as load() would
 * (a many_to_many through the join rows that name the new values: its
 * owner columns need not be the key, which a cascade would carry to them).
 */
jb::Node Patcher::rebuild_assoc(const Assoc &a, jb::View parent) {
  Texts owner = row_texts(parent, a.owner_cols);
  if (a.is_many()) {
    if (has_null(owner)) return jb::Node::array();
    ListSource source;
    source.assoc = &a;
    source.owner = owner;
    Jsonb *rows = a.kind == AssocKind::ManyToMany
                      ? load_list(*a.target, source)
                      : load_rows_where(*a.target, a.target_cols, owner, true);
    if (!rows || !JB_ROOT_IS_ARRAY(rows)) return jb::Node::array();
    return jb::Node::copy(jb::root_elem(rows));
  }
  if (has_null(owner)) return jb::Node::null();
  const PlanNode &t = *a.target;
  if (a.kind == AssocKind::BelongsTo && t.assocs.empty() &&
      same_columns(a.target_cols, t.table.pk)) {
    RowState s = read_row(t.table, owner);
    std::optional<jb::Node> n = build_row(t, s);
    return n ? std::move(*n) : jb::Node::null();
  }
  std::optional<jb::Elem> e = load_one(t, a.target_cols, owner);
  return e ? jb::Node::copy(*e) : jb::Node::null();
}

/*
 * A belongs_to/has_one object (or null) under parent: the changed row of T
 * replaces, updates or clears it; deeper changes are patched in it.
 */
std::optional<jb::Node> Patcher::patch_one(const Assoc &a, std::optional<jb::Elem> old,
                                           jb::View parent) {
  const PlanNode &t = *a.target;
  std::optional<jb::Elem> cur = old && old->is_container() ? old : std::nullopt;
  if (t.table.relid == event_table_) {
    for (const RowState &s : states_) {
      bool is_it = cur && compare_row_key(jb::View(*cur), t.table.pk, s.key) == 0;
      bool belongs = s.exists && rows_match(s.row, a.target_cols, parent, a.owner_cols);
      if (is_it && belongs) return patch_row(*cur, t, &s);
      /* it left, or it takes the place of another (or of null): read
       * what load() would give now */
      if (is_it || belongs) return rebuild_assoc(a, parent);
    }
  }
  if (cur && deep(t)) return patch_row(*cur, t, nullptr);
  return std::nullopt;
}
}  // namespace ectosync
