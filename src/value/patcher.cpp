/*
 * patcher.cpp: the Patcher (patcher.hpp): one event applied to the rows of
 * a value, or of a part of its root rows.
 */
#include "value/catalog.hpp"
#include "core/event.hpp"
#include "value/jsonb_writer.hpp"
#include "value/keys.hpp"
#include "pg/pg_boundary.hpp"
#include "pg/sql_context.hpp"
#include "core/plan.hpp"
#include "shmem/shmem.hpp"
#include "value/patcher.hpp"
#include "value/query_eval.hpp"
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
  for (size_t i = 0; i < cols_a.size(); i++) {
    std::optional<jb::Elem> x = a.get(cols_a[i].name), y = b.get(cols_b[i].name);
    if (!x || !y || x->is_null() || y->is_null()) return false;
    /* (by their kind's =: char(n) of two lengths pads the shorter, and an
     * oid, which to_jsonb writes as a string, equals an integer) */
    if (compare_elems(cols_a[i].kind, x, y) != 0) return false;
  }
  return true;
}

/* Whether two column lists name the same columns (by attnum), in order. */
bool same_columns(const std::vector<Column> &a, const std::vector<Column> &b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++)
    if (a[i].attnum != b[i].attnum) return false;
  return true;
}

/* load_rows_where as a view, every row (no window): an array (empty when
 * the query gave NULL). */
jb::View rows_where(const PlanNode &node, const std::vector<Column> &cols, const Texts &values) {
  Jsonb *rows = load_rows_where(node, cols, values, false);
  return rows ? jb::View(rows) : jb::View();
}

/* Whether rows of node n (or below) can change with table T's event. */
bool Patcher::involves(const PlanNode &n) {
  return involves_.get(&n, [&] { return n.table.relid == event_table_ || deep(n); });
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
  return linked(a, row_texts(parent, a.owner_cols), row_texts(s.row, a.target_cols));
}

/* Whether a join row of many_to_many a links owner and target (as the caller). */
bool Patcher::linked(const Assoc &a, Texts values, const Texts &target) {
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
  std::vector<KeyKind> kinds;
  for (const Column &c : t.pk) kinds.push_back(c.kind);
  std::string ckey = encode_key(pk, kinds);
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
  ReadMark mark = pg_call([] { return begin_read(); });
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
  if (!secure && reads_committed_now()) pg_call([&] { cache_put(t.relid, ckey, mark, row); });
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

/* Whether attnums name cols, in order. */
bool same_attnums(const std::vector<int16_t> &attnums, const std::vector<Column> &cols) {
  if (attnums.size() != cols.size()) return false;
  for (size_t i = 0; i < cols.size(); i++)
    if (attnums[i] != cols[i].attnum) return false;
  return true;
}

/* Reads the event, its table in the plan and its rows' current states. */
void Patcher::prepare() {
  event_table_ = ev_.relid;
  std::vector<const PlanNode *> stack{plan_.root.get()};
  while (!stack.empty() && !table_) {
    const PlanNode *n = stack.back();
    stack.pop_back();
    if (n->table.relid == event_table_) table_ = &n->table;
    for (const Assoc &a : n->assocs) {
      if (a.join && a.join->relid == event_table_) table_ = &*a.join;
      stack.push_back(a.target.get());
    }
  }
  if (!table_) return;
  /* Captured under another key than the table's now (one that changed
   * with no statement the event trigger sees: REINDEX CONCURRENTLY of the
   * unique index that stood for it): its texts name no row of this key. */
  std::vector<int16_t> event_key;
  for (const ColumnChange &c : ev_.columns)
    if (c.is_pk) event_key.push_back(c.attnum);
  if (!same_attnums(event_key, table_->pk))
    throw Error(ERRCODE_ECTOSYNC_RELOAD, "ecto_sync: the value must be reloaded",
                "Table " + table_->display() +
                    " was captured under another key than its key now (event " +
                    std::to_string(ev_.seq) + ").",
                "Call ectosync.load() again.");
  /* (one row when its key is written otherwise but equal: numeric's
   * 1.0 set to 1.00 moves no row, and must not be read and placed twice) */
  std::vector<Texts> pks;
  for (const Texts &pk : {ev_.old_pk(), ev_.new_pk()})
    if (!pk.empty() && !has_null(pk) &&
        std::none_of(pks.begin(), pks.end(),
                     [&](const Texts &seen) { return same_texts(table_->pk, seen, pk); }))
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
    if (a.join && a.join->relid == event_table_) {
      if (involves(*a.target)) return std::nullopt;
      if (!event_texts(a.join_owner_cols, texts)) return std::nullopt;
      for (const RowState &s : states_)
        if (s.exists) texts.push_back(row_texts(s.row, a.join_owner_cols));
    } else if (a.target->table.relid == event_table_ && !deep(*a.target) &&
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
  if (root.table.relid == event_table_)
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
      ctx.kind == ListCtx::ManyToMany && ctx.assoc->join && ctx.assoc->join->relid == event_table_;
  if (!list.is_array() || (!involves(n) && !join_list)) return std::nullopt;
  if (n.query.ordered() || n.query.windowed()) return patch_query_list(list, n, ctx);
  std::map<uint32_t, std::optional<jb::Node>> mods; /* nullopt: removed */
  std::vector<std::pair<uint32_t, jb::Node>> inserts;

  if (n.table.relid == event_table_) {
    for (const RowState &s : states_) {
      if (ctx.kind == ListCtx::Root && !in_root_range(s.key)) continue;
      auto [idx, found] = search(list, n.table.pk, s.key);
      bool belongs = s.exists && query_matches(n.query, s.row);
      if (belongs && ctx.kind == ListCtx::Root) belongs = filter_matches(s.row);
      if (belongs && ctx.kind == ListCtx::HasMany)
        belongs = rows_match(s.row, ctx.assoc->target_cols, ctx.parent, ctx.assoc->owner_cols);
      /* Join rows add a target; but under row level security a target row
       * may become visible by its own change, and under a where it may
       * come to match: a linked row enters then. */
      if (ctx.kind == ListCtx::ManyToMany) {
        bool moved = link_moved(*ctx.assoc, s);
        belongs = belongs &&
                  ((found && !moved) || ((moved || rls(event_table_) || !n.query.where.empty()) &&
                                         linked(*ctx.assoc, ctx.parent, s)));
      }
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

}  // namespace ectosync
