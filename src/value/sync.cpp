/*
 * sync.cpp: ectosync.sync(value jsonb, event text) RETURNS jsonb.
 *
 * A value made by load() (plan.hpp) is patched with the CURRENT state of the
 * row an event names (from the shared row cache, or read as the caller on a
 * miss or under row level security), so that applying events is idempotent
 * and robust to their order: after all events, the value equals a fresh
 * load() ("seq" aside).
 *
 * The value is read in place (jsonb_writer.hpp's View) and the result is
 * written with raw copies of everything the event cannot touch: subtrees
 * whose plan does not involve the event's table are never visited, runs of
 * untouched rows are copied as byte ranges, and lists are searched by
 * primary key (they are ordered by it) when the parent can be located from
 * the event's key values.
 *
 * The rules, for the changed row(s) of table T (old and new primary key):
 *  - wherever a row of T with that key sits, it gets the current columns
 *    (its association keys kept); it leaves a list when it no longer exists
 *    or no longer belongs there (has_many: its target columns no longer
 *    equal the parent's owner columns; root: the filter no longer matches),
 *    and enters, in primary-key order, the lists it now belongs to;
 *  - a row entering with associations of its own is read as load() reads
 *    it (load_rows_where by primary key, as the caller); without any it is
 *    the cached row;
 *  - when a row's owner columns changed, its belongs_to/has_one/has_many
 *    associations are read again (keyed load);
 *  - join rows of a many_to_many add or remove the target under the
 *    parents whose owner key the join row has (had);
 *  - a has_one/belongs_to whose row left, or that another row may now
 *    take, is read again (keyed load).
 *
 * Events of tables that the value does not hold return the value unchanged
 * (its seq is left alone too: a later event of a held table must not be
 * mistaken for an older one because an unrelated event advanced the seq).
 * RELOAD markers of a held table, events that left the event log, and other
 * epochs raise SQLSTATE ZE001: the client must load() again.
 */
#include "value/catalog.hpp"
#include "core/event.hpp"
#include "value/jsonb_writer.hpp"
#include "value/keys.hpp"
#include "pg/pg_boundary.hpp"
#include "core/plan.hpp"
#include "shmem/shared.hpp"
#include "value/sync.hpp"

extern "C" {
#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "catalog/namespace.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rls.h"

PG_FUNCTION_INFO_V1(ectosync_sync);
}

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ectosync {
namespace {

/* The reload-required error: the client must call load() again. */
[[noreturn]] void reload_required(const std::string &detail) {
  throw Error(ERRCODE_ECTOSYNC_RELOAD, "ecto_sync: the value must be reloaded", detail,
              "Call ectosync.load() again.");
}

/* A value that load() did not make, or that was altered. */
[[noreturn]] void bad_value(const std::string &detail) {
  throw Error(ERRCODE_INVALID_PARAMETER_VALUE,
              "ecto_sync: sync() needs a value made by ectosync.load()", detail);
}

/* Whether two column values of rows are equal (NULL equals nothing). */
bool equal_elems(const std::optional<jb::Elem> &a, const std::optional<jb::Elem> &b) {
  if (!a || !b || a->is_null() || b->is_null()) return false;
  if (a->is_numeric() && b->is_numeric())
    return jb::compare_numeric(a->numeric(), b->numeric()) == 0;
  if (a->type != b->type) return false;
  return a->len == b->len && std::memcmp(a->data, b->data, a->len) == 0;
}

/* Whether a row's cols equal key (no NULLs). */
bool row_matches_key(jb::View row, const std::vector<Column> &cols, const Key &key) {
  for (size_t i = 0; i < cols.size(); i++) {
    std::optional<jb::Elem> e = row.get(cols[i].name);
    if (!e || e->is_null() || !key[i].text) return false;
    if (compare_elem_part(cols[i].kind, e, key[i]) != 0) return false;
  }
  return true;
}

/* Whether row a's cols_a equal row b's cols_b, pairwise (no NULLs). */
bool rows_match(jb::View a, const std::vector<Column> &cols_a, jb::View b,
                const std::vector<Column> &cols_b) {
  for (size_t i = 0; i < cols_a.size(); i++)
    if (!equal_elems(a.get(cols_a[i].name), b.get(cols_b[i].name))) return false;
  return true;
}

/* Whether two column lists name the same columns (by attnum), in order. */
bool same_columns(const std::vector<Column> &a, const std::vector<Column> &b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++)
    if (a[i].attnum != b[i].attnum) return false;
  return true;
}

/* load_rows_where as a view: an array (empty when the query gave NULL). */
jb::View rows_where(const PlanNode &node, const std::vector<Column> &cols, const Texts &values) {
  Jsonb *rows = load_rows_where(node, cols, values);
  return rows ? jb::View(rows) : jb::View();
}

/* A memo of a few entries (a plan's nodes, its tables): a linear search
 * beats hashing at this size, and sync() asks once per row it visits. */
template <typename K>
class SmallMemo {
 public:
  template <typename F>
  bool get(K key, F compute) {
    for (const auto &[k, v] : entries_)
      if (k == key) return v;
    bool v = compute();
    entries_.emplace_back(key, v);
    return v;
  }

 private:
  std::vector<std::pair<K, bool>> entries_;
};

/* The current state of one row of a table: cache, or a keyed read. */
struct RowState {
  Texts texts; /* primary key */
  Key key;
  bool exists = false;
  Jsonb *jsonb = nullptr; /* the row's columns only, when it exists */
  jb::View row;
};

/*
 * Everything one sync() call needs: the plan, the event, the changed rows'
 * current states, and memos.
 */
class Patcher {
 public:
  Patcher(const Plan &plan, const Event &ev, jb::View filter)
      : plan_(plan), ev_(ev), filter_(filter) {}

  /* Finds the table of the event in the plan and reads the changed rows. */
  void prepare();
  /*
   * The patched root rows, or nullopt when nothing changed.  rows may be a
   * part of the root rows (parts.hpp): the rows from the first row lo (none:
   * from the lowest key) up to the row hi (none: to the end), which is where
   * the changed rows of the root table may enter.
   */
  std::optional<jb::Node> patch_root(jb::View rows, jb::View lo = {}, jb::View hi = {}) {
    lo_ = lo;
    hi_ = hi;
    root_touched_.clear();
    root_changed_rows_.clear();
    root_moved_ = false;
    return patch_list(rows, *plan_.root, ListCtx{ListCtx::Root, nullptr, {}});
  }
  /* The keys of the root rows that the event may change; nullopt: any. */
  std::optional<std::vector<Key>> root_keys();
  /* The root rows the last patch_root() changed, added or removed. */
  void touched(PartTouch &touch) const {
    touch.keys.insert(touch.keys.end(), root_touched_.begin(), root_touched_.end());
    touch.rows.insert(touch.rows.end(), root_changed_rows_.begin(), root_changed_rows_.end());
    touch.moved = touch.moved || root_moved_;
  }

 private:
  /* Where a list of rows lives. */
  struct ListCtx {
    enum Kind { Root, HasMany, ManyToMany } kind;
    const Assoc *assoc;
    jb::View parent; /* the owner row (its current columns) */
  };

  bool involves(const PlanNode &n);
  bool deep(const PlanNode &n);
  bool assoc_involves(const Assoc &a) {
    return (a.join && a.join->relid == T_) || involves(*a.target);
  }
  bool rls(uint32_t relid);
  bool linked(const Assoc &a, jb::View parent, const RowState &s);
  RowState read_row(const TableInfo &t, const Texts &pk);
  std::optional<jb::Elem> load_one(const PlanNode &node, const std::vector<Column> &cols,
                                   const Texts &values);
  std::optional<jb::Node> build_row(const PlanNode &n, const RowState &s);
  bool filter_matches(jb::View row);
  std::optional<std::vector<Key>> candidate_parents(const PlanNode &n);
  std::optional<jb::Node> patch_list(jb::View list, const PlanNode &n, const ListCtx &ctx);
  void patch_join(jb::View list, const Assoc &a, jb::View parent,
                  std::map<uint32_t, std::optional<jb::Node>> &mods,
                  std::vector<std::pair<uint32_t, jb::Node>> &inserts);
  std::optional<jb::Node> patch_row(jb::Elem row, const PlanNode &n, const RowState *state);
  std::optional<jb::Node> patch_one(const Assoc &a, std::optional<jb::Elem> old, jb::View parent);
  jb::Node rebuild_assoc(const Assoc &a, jb::View parent);
  bool event_texts(const std::vector<Column> &cols, std::vector<Texts> &out);
  /* Whether a root key belongs in the rows patch_root() was given. */
  bool in_root_range(const Key &key) const {
    const std::vector<Column> &pk = plan_.root->table.pk;
    return (!lo_.valid() || compare_row_key(lo_, pk, key) <= 0) &&
           (!hi_.valid() || compare_row_key(hi_, pk, key) > 0);
  }

  const Plan &plan_;
  const Event &ev_;
  jb::View filter_;
  uint32_t T_ = 0;
  const TableInfo *table_ = nullptr; /* the event's table */
  std::vector<RowState> states_;     /* one per distinct pk (old, new) */
  SmallMemo<const PlanNode *> involves_, deep_;
  SmallMemo<uint32_t> rls_;
  std::vector<std::unique_ptr<PlanNode>> bare_nodes_; /* tables without assocs */
  jb::View lo_, hi_;                                  /* the root rows' range (patch_root) */
  std::vector<Texts> root_touched_;         /* (patch_root) keys of the rows it changed, */
  std::vector<uint32_t> root_changed_rows_; /* positions of those changed in place, */
  bool root_moved_ = false;                 /* whether rows entered or left */
};

/* Whether rows of node n (or below) can change with table T's event. */
bool Patcher::involves(const PlanNode &n) {
  return involves_.get(&n, [&] { return n.table.relid == T_ || deep(n); });
}

/* Whether some association of n involves T (n's own table aside). */
bool Patcher::deep(const PlanNode &n) {
  return deep_.get(&n, [&] {
    bool r = false;
    for (const Assoc &a : n.assocs) r = r || assoc_involves(a);
    return r;
  });
}

/* Row level security in force for the caller on relid: no cached rows. */
bool Patcher::rls(uint32_t relid) {
  return rls_.get(relid, [&] {
    return pg_call([&] { return check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED; });
  });
}

/* Whether a join row of many_to_many a links parent and row s (as the caller). */
bool Patcher::linked(const Assoc &a, jb::View parent, const RowState &s) {
  Texts values = row_texts(parent, a.owner_cols), target = row_texts(s.row, a.target_cols);
  if (has_null(values) || has_null(target)) return false;
  values.insert(values.end(), target.begin(), target.end());
  std::vector<Column> cols = a.join_owner_cols;
  cols.insert(cols.end(), a.join_target_cols.begin(), a.join_target_cols.end());
  bare_nodes_.push_back(std::make_unique<PlanNode>());
  bare_nodes_.back()->table = *a.join;
  jb::View rows = rows_where(*bare_nodes_.back(), cols, values);
  return rows.is_array() && rows.size() > 0;
}

/*
 * The current columns of t's row with primary key pk: from the cache, or
 * (on a miss, and always under RLS) read as the caller; a miss is cached
 * with the last seq read before the read, so the entry reflects every event
 * up to it.
 */
RowState Patcher::read_row(const TableInfo &t, const Texts &pk) {
  RowState s;
  s.texts = pk;
  s.key = make_key(t.pk, pk);
  std::string ckey = encode_key(pk);
  bool secure = rls(t.relid);
  if (!secure) {
    CachedRow c = pg_call([&] { return cache_get(t.relid, ckey); });
    if (c.found) {
      s.exists = c.exists && c.row;
      if (s.exists) {
        s.jsonb = c.row;
        s.row = jb::View(c.row);
      }
      return s;
    }
  }
  uint64_t version = last_seq();
  bare_nodes_.push_back(std::make_unique<PlanNode>());
  bare_nodes_.back()->table = t;
  jb::View list = rows_where(*bare_nodes_.back(), t.pk, pk);
  Jsonb *row = nullptr;
  if (list.is_array() && list.size() > 0) {
    row = jb::to_jsonb(jb::Node::copy(list.at(0)));
    s.exists = true;
    s.jsonb = row;
    s.row = jb::View(row);
  }
  /* Share what was read only if every backend could have read it: not
   * this transaction's own uncommitted writes, and not a transaction
   * snapshot older than the version. */
  bool shareable =
      !IsolationUsesXactSnapshot() && !TransactionIdIsValid(GetTopTransactionIdIfAny());
  if (!secure && shareable) pg_call([&] { cache_put(t.relid, ckey, version, row); });
  return s;
}

/* The first row of node where cols = values, with its associations. */
std::optional<jb::Elem> Patcher::load_one(const PlanNode &node, const std::vector<Column> &cols,
                                          const Texts &values) {
  if (has_null(values)) return std::nullopt;
  jb::View list = rows_where(node, cols, values);
  if (!list.is_array() || list.size() == 0) return std::nullopt;
  return list.at(0);
}

/*
 * A row entering a list: its columns and every nested association.  Without
 * associations the current state is the row; otherwise it is read as load()
 * reads it (keyed by primary key, as the caller).
 */
std::optional<jb::Node> Patcher::build_row(const PlanNode &n, const RowState &s) {
  if (!s.exists) return std::nullopt;
  if (n.assocs.empty()) return jb::Node::copy(jb::root_elem(s.jsonb));
  std::optional<jb::Elem> e = load_one(n, n.table.pk, s.texts);
  if (!e) return std::nullopt;
  return jb::Node::copy(*e);
}

/* Whether a root row matches the value's filter ({"col": scalar, ...}). */
bool Patcher::filter_matches(jb::View row) {
  if (!filter_.is_object()) return true;
  for (uint32_t i = 0; i < filter_.size(); i++) {
    std::optional<jb::Elem> have = row.get(filter_.key(i));
    jb::Elem want = filter_.value(i);
    if (!have) return false;
    if (want.is_null() || have->is_null()) {
      if (want.is_null() != have->is_null()) return false;
      continue;
    }
    if (want.is_bool() || have->is_bool()) {
      if (want.type != have->type) return false;
      continue;
    }
    if (!equal_elems(have, want)) return false;
  }
  return true;
}

/*
 * The event's old and new values of cols.  false when the event lacks a
 * side it should have (old for UPDATE/DELETE, new for INSERT/UPDATE): the
 * columns were not tracked, so the parents cannot be found from the event.
 */
bool Patcher::event_texts(const std::vector<Column> &cols, std::vector<Texts> &out) {
  bool complete = true;
  for (int side = 0; side < 2; side++) {
    bool needed = side == 0 ? ev_.op != Op::Insert : ev_.op != Op::Delete;
    Texts t;
    bool ok = true;
    for (const Column &c : cols) {
      const ColumnChange *cc = ev_.column(c.attnum);
      if (!cc || !(side == 0 ? cc->has_old : cc->has_new)) {
        ok = false;
        break;
      }
      t.push_back(side == 0 ? cc->old_value : cc->new_value);
    }
    if (!ok && needed) complete = false;
    if (ok && !has_null(t)) out.push_back(std::move(t));
  }
  return complete;
}

/* Reads the event, its table in the plan and its rows' current states. */
void Patcher::prepare() {
  T_ = ev_.relid;
  std::vector<const PlanNode *> stack{plan_.root.get()};
  while (!stack.empty() && !table_) {
    const PlanNode *n = stack.back();
    stack.pop_back();
    if (n->table.relid == T_) table_ = &n->table;
    for (const Assoc &a : n->assocs) {
      if (a.join && a.join->relid == T_) table_ = &*a.join;
      stack.push_back(a.target.get());
    }
  }
  if (!table_) return;
  std::vector<Texts> pks;
  for (const Texts &pk : {ev_.old_pk(), ev_.new_pk()})
    if (!pk.empty() && !has_null(pk) && std::find(pks.begin(), pks.end(), pk) == pks.end())
      pks.push_back(pk);
  for (const Texts &pk : pks) states_.push_back(read_row(*table_, pk));
}

/*
 * The rows of a list of node n that can hold what changed, when they can be
 * found by primary key: every association of n that involves T must reach
 * T directly (its rows or its join rows, nothing deeper) through n's primary
 * key.  nullopt: scan every row.
 */
std::optional<std::vector<Key>> Patcher::candidate_parents(const PlanNode &n) {
  std::vector<Texts> texts;
  for (const Assoc &a : n.assocs) {
    if (!assoc_involves(a)) continue;
    if (!same_columns(a.owner_cols, n.table.pk)) return std::nullopt;
    if (a.join && a.join->relid == T_) {
      if (involves(*a.target)) return std::nullopt;
      if (!event_texts(a.join_owner_cols, texts)) return std::nullopt;
      for (const RowState &s : states_)
        if (s.exists) texts.push_back(row_texts(s.row, a.join_owner_cols));
    } else if (a.target->table.relid == T_ && !deep(*a.target) &&
               (a.kind == AssocKind::HasMany || a.kind == AssocKind::HasOne)) {
      if (!event_texts(a.target_cols, texts)) return std::nullopt;
      for (const RowState &s : states_)
        if (s.exists) texts.push_back(row_texts(s.row, a.target_cols));
    } else {
      return std::nullopt;
    }
  }
  std::vector<Key> keys;
  std::vector<Texts> seen;
  for (const Texts &t : texts) {
    if (has_null(t) || std::find(seen.begin(), seen.end(), t) != seen.end()) continue;
    seen.push_back(t);
    keys.push_back(make_key(n.table.pk, t));
  }
  return keys;
}

std::optional<std::vector<Key>> Patcher::root_keys() {
  const PlanNode &root = *plan_.root;
  std::vector<Key> keys;
  if (!involves(root)) return keys;
  if (root.table.relid == T_)
    for (const RowState &s : states_) keys.push_back(s.key);
  if (deep(root)) {
    std::optional<std::vector<Key>> parents = candidate_parents(root);
    if (!parents) return std::nullopt;
    keys.insert(keys.end(), parents->begin(), parents->end());
  }
  return keys;
}

/*
 * A list of rows of node n: the changed rows of T leave, enter (in primary
 * key order) or are updated; rows whose associations involve T are patched.
 */
std::optional<jb::Node> Patcher::patch_list(jb::View list, const PlanNode &n, const ListCtx &ctx) {
  bool join_list =
      ctx.kind == ListCtx::ManyToMany && ctx.assoc->join && ctx.assoc->join->relid == T_;
  if (!list.is_array() || (!involves(n) && !join_list)) return std::nullopt;
  std::map<uint32_t, std::optional<jb::Node>> mods; /* nullopt: removed */
  std::vector<std::pair<uint32_t, jb::Node>> inserts;

  if (n.table.relid == T_) {
    for (const RowState &s : states_) {
      if (ctx.kind == ListCtx::Root && !in_root_range(s.key)) continue;
      auto [idx, found] = search(list, n.table.pk, s.key);
      bool belongs = s.exists;
      if (belongs && ctx.kind == ListCtx::Root) belongs = filter_matches(s.row);
      if (belongs && ctx.kind == ListCtx::HasMany)
        belongs = rows_match(s.row, ctx.assoc->target_cols, ctx.parent, ctx.assoc->owner_cols);
      /* Join rows add a target; but under row level security a target row
       * may become visible by its own change: a linked row enters then. */
      if (ctx.kind == ListCtx::ManyToMany)
        belongs = belongs && (found || (rls(T_) && linked(*ctx.assoc, ctx.parent, s)));
      if (found && !belongs)
        mods[idx] = std::nullopt;
      else if (found)
        mods[idx] = patch_row(list.at(idx), n, &s);
      else if (belongs)
        if (std::optional<jb::Node> row = build_row(n, s)) {
          inserts.emplace_back(idx, std::move(*row));
          if (ctx.kind == ListCtx::Root) root_touched_.push_back(s.texts);
        }
    }
  }
  if (join_list) patch_join(list, *ctx.assoc, ctx.parent, mods, inserts);

  if (deep(n)) {
    auto visit = [&](uint32_t i, jb::Elem row) {
      if (mods.count(i)) return;
      if (std::optional<jb::Node> r = patch_row(row, n, nullptr)) mods[i] = std::move(r);
    };
    if (std::optional<std::vector<Key>> keys = candidate_parents(n)) {
      for (const Key &k : *keys) {
        auto [idx, found] = search(list, n.table.pk, k);
        if (found) visit(idx, list.at(idx));
      }
    } else {
      /* every row: in order, each found in O(1) */
      for (jb::Cursor rows(list); !rows.done();) {
        uint32_t i = rows.index();
        visit(i, rows.next());
      }
    }
  }
  if (mods.empty() && inserts.empty()) return std::nullopt;
  if (ctx.kind == ListCtx::Root) {
    for (const auto &[idx, row] : mods) {
      root_touched_.push_back(row_texts(jb::View(list.at(idx)), n.table.pk));
      if (row)
        root_changed_rows_.push_back(idx);
      else
        root_moved_ = true;
    }
    root_moved_ = root_moved_ || !inserts.empty();
  }

  /* The new list: untouched runs copied as byte ranges. */
  std::stable_sort(inserts.begin(), inserts.end(),
                   [](const auto &a, const auto &b) { return a.first < b.first; });
  jb::Node out = jb::Node::array();
  uint32_t next = 0; /* first source index not yet emitted */
  auto copy_until = [&](uint32_t end) {
    if (end > next) out.push(jb::Node::copy_range(list, next, end));
    next = std::max(next, end);
  };
  size_t ins = 0;
  auto insert_at = [&](uint32_t pos) {
    for (; ins < inserts.size() && inserts[ins].first <= pos; ins++) {
      copy_until(inserts[ins].first);
      out.push(std::move(inserts[ins].second));
    }
  };
  for (auto &[idx, node] : mods) {
    insert_at(idx);
    copy_until(idx);
    if (node) out.push(std::move(*node));
    next = idx + 1;
  }
  insert_at(list.size());
  copy_until(list.size());
  return out;
}

/*
 * A many_to_many list under parent when T is its join table: the target
 * rows that the changed join rows link to this parent are added when a join
 * row links them now, removed when it no longer does.
 */
void Patcher::patch_join(jb::View list, const Assoc &a, jb::View parent,
                         std::map<uint32_t, std::optional<jb::Node>> &mods,
                         std::vector<std::pair<uint32_t, jb::Node>> &inserts) {
  Texts owner = row_texts(parent, a.owner_cols);
  if (has_null(owner)) return;
  /* (target key, linked now) for each join row state the event names */
  std::vector<std::pair<Texts, bool>> targets;
  auto note = [&](const Texts &target, bool linked) {
    for (auto &t : targets)
      if (t.first == target) {
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
    if (ok && o == owner && !has_null(t)) note(t, false);
  }
  for (const RowState &s : states_) {
    if (!s.exists) continue;
    if (row_texts(s.row, a.join_owner_cols) != owner) continue;
    Texts t = row_texts(s.row, a.join_target_cols);
    if (!has_null(t)) note(t, true);
  }
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
      mods[*at] = std::nullopt;
    } else if (!at && linked) {
      std::optional<jb::Elem> row;
      if (by_pk && target.assocs.empty() && !rls(target.table.relid)) {
        RowState s = read_row(target.table, tkey);
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
    if (owner_changed && a.kind != AssocKind::ManyToMany) {
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

/* An association whose owner columns changed: read again, as load() would. */
jb::Node Patcher::rebuild_assoc(const Assoc &a, jb::View parent) {
  Texts owner = row_texts(parent, a.owner_cols);
  if (a.is_many()) {
    if (has_null(owner)) return jb::Node::array();
    Jsonb *rows = load_rows_where(*a.target, a.target_cols, owner);
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
  if (t.table.relid == T_) {
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

/*
 * Whether a RELOAD marker naming table ("schema.name" as payloads show it,
 * unquoted, or the relid when the worker could not name it) may concern the
 * plan.  Names are matched as they are now and as the plan knows them;
 * a name that resolves to no table may be a renamed one: assume it does.
 */
bool may_hold_table(const Plan &plan, const std::string &table) {
  std::vector<uint32_t> tables = plan.tables();
  auto held = [&](uint32_t relid) {
    return std::find(tables.begin(), tables.end(), relid) != tables.end();
  };
  std::vector<const PlanNode *> stack{plan.root.get()};
  while (!stack.empty()) {
    const PlanNode *n = stack.back();
    stack.pop_back();
    if (n->table.display() == table) return true;
    for (const Assoc &a : n->assocs) {
      if (a.join && a.join->display() == table) return true;
      stack.push_back(a.target.get());
    }
  }
  if (!table.empty() && table.find_first_not_of("0123456789") == std::string::npos)
    return held(static_cast<uint32_t>(std::stoul(table)));
  /* Schema and table names may hold dots themselves: try every split. */
  bool resolved = false;
  for (size_t dot = table.find('.'); dot != std::string::npos; dot = table.find('.', dot + 1)) {
    std::string schema = table.substr(0, dot), name = table.substr(dot + 1);
    Oid relid = pg_call([&] {
      Oid nsp = get_namespace_oid(schema.c_str(), true);
      return OidIsValid(nsp) ? get_relname_relid(name.c_str(), nsp) : InvalidOid;
    });
    if (!OidIsValid(relid)) continue;
    if (held(relid)) return true;
    resolved = true;
  }
  return !resolved;
}

/* Reads an integer member of the value ("relid", "seq", "ectosync"). */
uint64_t value_number(jb::View value, const char *key) {
  std::optional<jb::Elem> e = value.get(key);
  if (!e || !e->is_numeric())
    bad_value(std::string("Its key \"") + key + "\" is missing or not a number.");
  std::string text = jb::numeric_text(e->numeric());
  if (text.empty() || text.size() > 20 || text.find_first_not_of("0123456789") != std::string::npos)
    bad_value(std::string("Its key \"") + key + "\" is not a non-negative integer: " + text + ".");
  return std::stoull(text);
}

/* A value's header, validated (bad_value otherwise). */
struct ValueHeader {
  uint64_t relid = 0, seq = 0, epoch = 0;
  jb::Elem assocs, rows;
  std::optional<jb::Elem> filter;
};

ValueHeader read_header(const Jsonb *value) {
  jb::View v(value);
  if (!v.is_object()) bad_value("The value is not a jsonb object.");
  if (value_number(v, "ectosync") != 1) bad_value("Its \"ectosync\" format version is not 1.");
  ValueHeader h;
  h.relid = value_number(v, "relid");
  h.seq = value_number(v, "seq");
  std::optional<jb::Elem> assocs = v.get("assocs"), epoch = v.get("epoch"), rows = v.get("rows");
  h.filter = v.get("filter");
  if (!assocs || !jb::View(*assocs).is_object())
    bad_value("Its key \"assocs\" is missing or not an object.");
  if (!epoch || !epoch->is_string()) bad_value("Its key \"epoch\" is missing or not a string.");
  if (!rows || !jb::View(*rows).is_array())
    bad_value("Its key \"rows\" is missing or not an array.");
  if (h.filter && !h.filter->is_null() && !jb::View(*h.filter).is_object())
    bad_value("Its key \"filter\" is neither null nor an object.");
  uint64_t ignored = 0;
  if (!parse_event_id(std::string(epoch->str()) + ":1", h.epoch, ignored))
    bad_value("Its \"epoch\" is not 16 hexadecimal digits.");
  if (h.epoch != shared_epoch())
    reload_required("The value was loaded before the server restarted (epoch " +
                    std::string(epoch->str()) + ").");
  h.assocs = *assocs;
  h.rows = *rows;
  return h;
}

/* The plan of a value's shape (cached per backend by resolve_plan). */
const Plan &value_plan(const ValueHeader &h) {
  Jsonb *assocs_jsonb = jb::to_jsonb(jb::Node::copy(h.assocs));
  return resolve_plan(static_cast<uint32_t>(h.relid), assocs_jsonb);
}

/* Whether a RELOAD marker of relid (0: every table) concerns the plan. */
bool reload_concerns(const Plan &plan, uint32_t relid) {
  std::vector<uint32_t> tables = plan.tables();
  return relid == 0 || std::find(tables.begin(), tables.end(), relid) != tables.end();
}

/* The name of table relid of the plan, as payloads show it ("": 0, every table). */
std::string plan_table_name(const Plan &plan, uint32_t relid) {
  std::vector<const PlanNode *> stack{plan.root.get()};
  while (relid != 0 && !stack.empty()) {
    const PlanNode *n = stack.back();
    stack.pop_back();
    if (n->table.relid == relid) return n->table.display();
    for (const Assoc &a : n->assocs) {
      if (a.join && a.join->relid == relid) return a.join->display();
      stack.push_back(a.target.get());
    }
  }
  return relid == 0 ? std::string() : std::to_string(relid);
}

/*
 * Whether the logged event ev may change a value of plan: an event of a
 * table the value holds (the caller must then be able to read them all:
 * check_select_privileges).  A RELOAD marker of such a table raises ZE001,
 * saying why it was queued; one of another table leaves the value alone.
 */
bool event_concerns(const Plan &plan, const ValueHeader &h, const Event &ev) {
  if (ev.op == Op::Reload) {
    if (reload_concerns(plan, ev.relid))
      reload_required(
          reload_reason(ev.why, plan_table_name(plan, ev.relid), format_event_id(h.epoch, ev.seq)));
    return false;
  }
  std::vector<uint32_t> tables = plan.tables();
  return std::find(tables.begin(), tables.end(), ev.relid) != tables.end();
}

/*
 * The logged event ev (its seq: ev.seq) applied to value: a new value with
 * seq ev.seq, or value itself when the event cannot touch it.
 */
Jsonb *apply_event(Jsonb *value, const ValueHeader &h, const Plan &plan, const Event &ev) {
  if (ev.seq <= h.seq) return value; /* already reflected: idempotent */
  if (!event_concerns(plan, h, ev)) return value;
  check_select_privileges(plan);

  Patcher patcher(plan, ev, h.filter ? jb::View(*h.filter) : jb::View());
  patcher.prepare();
  std::optional<jb::Node> new_rows = patcher.patch_root(jb::View(h.rows));

  Numeric seq_num = pg_call([&] { return int64_to_numeric(static_cast<int64>(ev.seq)); });
  jb::View v(value);
  jb::Node out = jb::Node::object();
  for (uint32_t i = 0; i < v.size(); i++) {
    std::string_view key = v.key(i);
    if (key == "seq")
      out.set(key, jb::Node::number(seq_num));
    else if (key == "rows" && new_rows)
      out.set(key, std::move(*new_rows));
    else
      out.set(key, jb::Node::copy(v.value(i)));
  }
  return jb::to_jsonb(out);
}

/*
 * The parts that have rows, by their first rows: what routes a root key.
 * A key belongs in the last part whose first row is at or below it, else
 * in the first part; a value without rows routes everything to part 0.
 * Kept across the events of a call, and updated as parts are replaced.
 */
class Routes {
 public:
  explicit Routes(const std::vector<Jsonb *> &parts) {
    for (size_t i = 0; i < parts.size(); i++) {
      jb::View part(parts[i]);
      if (part.size() == 0) continue;
      filled_.push_back(i);
      first_.emplace_back(part.at(0));
    }
    if (filled_.empty()) {
      filled_.push_back(0);
      first_.emplace_back();
    }
  }
  size_t size() const { return filled_.size(); }
  size_t part(size_t f) const { return filled_[f]; }
  /* The rows of route f run from first(f) (none: from the lowest key) up
   * to first(f + 1) (none: to the end). */
  jb::View lower(size_t f) const { return f > 0 ? first_[f] : jb::View(); }
  jb::View upper(size_t f) const { return f + 1 < size() ? first_[f + 1] : jb::View(); }
  size_t route(const Key &key, const std::vector<Column> &pk) const {
    size_t lo = 0, hi = size();
    while (hi - lo > 1) {
      size_t mid = lo + (hi - lo) / 2;
      if (compare_row_key(first_[mid], pk, key) <= 0)
        lo = mid;
      else
        hi = mid;
    }
    return lo;
  }
  /* Route f's part is now part (call for the highest f first). */
  void replaced(size_t f, const Jsonb *part) {
    jb::View rows(part);
    if (rows.size() > 0) {
      first_[f] = jb::View(rows.at(0));
    } else if (size() > 1) {
      filled_.erase(filled_.begin() + f);
      first_.erase(first_.begin() + f);
    } else {
      first_[f] = jb::View();
    }
  }

 private:
  std::vector<size_t> filled_;
  std::vector<jb::View> first_;
};

/*
 * The event's changes to the parts of a value (parts.hpp): only the parts
 * that hold the root keys the event may change are patched (all of them
 * when any root row may change).  A changed part is replaced by a new one
 * written in made; a replaced part that was made there too (fresh) is
 * freed.  Whether some part changed.
 */
bool patch_parts(const Plan &plan, Patcher &patcher, std::vector<Jsonb *> &parts, Routes &routes,
                 std::vector<bool> &fresh, MemoryContext made, TouchedRows *touched) {
  std::optional<std::vector<Key>> keys = patcher.root_keys();
  if (keys && keys->empty()) return false;
  std::vector<bool> visit(routes.size(), !keys);
  if (keys)
    for (const Key &k : *keys) visit[routes.route(k, plan.root->table.pk)] = true;
  /* Bounds come from the parts as the event found them: the routes move
   * on once every part is patched. */
  std::vector<std::pair<size_t, Jsonb *>> replaced;
  for (size_t f = 0; f < routes.size(); f++) {
    if (!visit[f]) continue;
    size_t i = routes.part(f);
    std::optional<jb::Node> rows =
        patcher.patch_root(jb::View(parts[i]), routes.lower(f), routes.upper(f));
    if (!rows) continue;
    Jsonb *part = in_context(made, [&] { return jb::to_jsonb(*rows); });
    if (fresh[i]) pg_call([&] { pfree(parts[i]); });
    if (touched) patcher.touched((*touched)[i]);
    parts[i] = part;
    fresh[i] = true;
    replaced.emplace_back(f, part);
  }
  for (auto it = replaced.rbegin(); it != replaced.rend(); ++it)
    routes.replaced(it->first, it->second);
  return !replaced.empty();
}

/* Reads event seq of the log, or says why the value must be reloaded. */
void logged_event(uint64_t epoch, uint64_t seq, Event &ev) {
  switch (event_lookup(seq, ev)) {
    case LogLookup::Found:
      return;
    case LogLookup::Expired:
      reload_required("The event " + format_event_id(epoch, seq) +
                      " is no longer in the event log.");
    case LogLookup::NoRecord:
      reload_required("The event " + format_event_id(epoch, seq) +
                      " has no record: a RELOAD marker found no room in the queue.");
    case LogLookup::Unknown:
      throw Error(ERRCODE_INVALID_PARAMETER_VALUE, "ecto_sync: unknown event",
                  "No event " + format_event_id(epoch, seq) + " was queued in this database.",
                  "Pass the payload of an ectosync_<relid> notification.");
  }
}

/* The whole call: validation, the event, the plan, the patch. */
Jsonb *sync_value(Jsonb *value, const std::string &event_text) {
  ValueHeader h = read_header(value);
  EventRef ref;
  if (!parse_payload(event_text, ref))
    throw Error(ERRCODE_INVALID_PARAMETER_VALUE, "ecto_sync: invalid event",
                "The event \"" + event_text.substr(0, 200) +
                    "\" is neither a notification payload nor an event id.",
                "Pass the payload of an ectosync_<relid> notification.");
  if (ref.epoch != h.epoch)
    reload_required("The event " + format_event_id(ref.epoch, ref.seq) +
                    " belongs to another server run.");
  if (ref.seq <= h.seq) return value; /* already reflected: idempotent */
  const Plan &plan = value_plan(h);

  /* A RELOAD marker ("*": the whole database) for a table the value holds
   * (as the payload names it): why it was queued, as its record in the log
   * says, if the log still has it. */
  if (ref.op && *ref.op == Op::Reload) {
    bool every = ref.table.empty() || ref.table == "*";
    if (every || may_hold_table(plan, ref.table)) {
      Event marker;
      bool logged = event_lookup(ref.seq, marker) == LogLookup::Found && marker.op == Op::Reload &&
                    reload_concerns(plan, marker.relid);
      reload_required(logged ? reload_reason(marker.why, plan_table_name(plan, marker.relid),
                                             format_event_id(ref.epoch, ref.seq))
                             : reload_reason(0, every ? std::string() : ref.table,
                                             format_event_id(ref.epoch, ref.seq)));
    }
    return value;
  }
  Event ev;
  logged_event(ref.epoch, ref.seq, ev);
  return apply_event(value, h, plan, ev);
}

}  // namespace

void sync_parts(PartedValue &value, uint64_t after, uint64_t upto,
                std::vector<uint64_t> *changed_by, TouchedRows *touched) {
  ValueHeader h = read_header(value.head);
  const Plan &plan = value_plan(h);
  jb::View filter = h.filter ? jb::View(*h.filter) : jb::View();
  /* New parts are written in the caller's context; whatever else an event
   * needs goes with the scratch context after it. */
  MemoryContext made = CurrentMemoryContext;
  MemoryContext scratch = pg_call(
      [&] { return AllocSetContextCreate(made, "ecto_sync sync_parts", ALLOCSET_DEFAULT_SIZES); });
  std::vector<bool> fresh(value.parts.size(), false);
  bool readable = false;
  Routes routes(value.parts);
  if (touched) touched->resize(value.parts.size());
  try {
    for (uint64_t seq = after + 1; seq <= upto; seq++) {
      bool changed = in_context(scratch, [&] {
        Event ev;
        logged_event(h.epoch, seq, ev);
        if (!event_concerns(plan, h, ev)) return false;
        if (!readable) check_select_privileges(plan); /* once a call */
        readable = true;
        Patcher patcher(plan, ev, filter);
        patcher.prepare();
        return patch_parts(plan, patcher, value.parts, routes, fresh, made, touched);
      });
      pg_call([&] { MemoryContextReset(scratch); });
      if (changed && changed_by) changed_by->push_back(seq);
    }
  } catch (...) {
    pg_call([&] { MemoryContextDelete(scratch); });
    throw;
  }
  pg_call([&] { MemoryContextDelete(scratch); });
}

}  // namespace ectosync

/* SQL: ectosync.sync(value jsonb, event text) RETURNS jsonb */
extern "C" Datum ectosync_sync(PG_FUNCTION_ARGS) {
  Jsonb *value = PG_GETARG_JSONB_P(0);
  text *event = PG_GETARG_TEXT_PP(1);
  Jsonb *result = ectosync::pg_entry([&] {
    return ectosync::sync_value(value, std::string(VARDATA_ANY(event), VARSIZE_ANY_EXHDR(event)));
  });
  PG_RETURN_JSONB_P(result);
}
