/*
 * patcher.hpp: the Patcher, which patches the rows of a value made by load()
 * with the current state of the rows one event names (the rules: sync.cpp's
 * header comment).  Internal to sync.cpp and patcher.cpp.
 */
#pragma once

#include "core/event.hpp"
#include "core/plan.hpp"
#include "value/catalog.hpp"
#include "value/jsonb_writer.hpp"
#include "value/keys.hpp"
#include "value/sync.hpp"

extern "C" {
#include "postgres.h"
#include "utils/jsonb.h"
}

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace ectosync {

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

/* Helpers of patcher.cpp and patcher_assoc.cpp. */
/* Whether two column values of rows are equal (NULL equals nothing). */
bool equal_elems(const std::optional<jb::Elem> &a, const std::optional<jb::Elem> &b);
/* Whether a row's cols equal key (no NULLs). */
bool row_matches_key(jb::View row, const std::vector<Column> &cols, const Key &key);
/* Whether row a's cols_a equal row b's cols_b, pairwise (no NULLs). */
bool rows_match(jb::View a, const std::vector<Column> &cols_a, jb::View b,
                const std::vector<Column> &cols_b);
/* Whether two column lists name the same columns (by attnum), in order. */
bool same_columns(const std::vector<Column> &a, const std::vector<Column> &b);
/* load_rows_where() of every row (no window), as a view (empty on NULL). */
jb::View rows_where(const PlanNode &node, const std::vector<Column> &cols, const Texts &values);

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
    return (a.join && a.join->relid == event_table_) || involves(*a.target);
  }
  bool rls(uint32_t relid);
  bool linked(const Assoc &a, jb::View parent, const RowState &s);
  bool linked(const Assoc &a, Texts owner, const Texts &target);
  RowState read_row(const TableInfo &t, const Texts &pk);
  std::optional<jb::Elem> load_one(const PlanNode &node, const std::vector<Column> &cols,
                                   const Texts &values);
  std::optional<jb::Node> build_row(const PlanNode &n, const RowState &s);
  bool filter_matches(jb::View row);
  std::optional<std::vector<Key>> candidate_parents(const PlanNode &n);
  std::optional<jb::Node> patch_list(jb::View list, const PlanNode &n, const ListCtx &ctx);
  std::optional<jb::Node> patch_query_list(jb::View list, const PlanNode &n, const ListCtx &ctx);
  jb::Node reread_window(const PlanNode &n, const ListCtx &ctx);
  std::optional<Texts> old_texts(const std::vector<Column> &cols);
  std::optional<int> compare_to_old(const ListQuery &q, const std::vector<Column> &pk,
                                    jb::View row);
  std::optional<bool> was_ahead(const RowState &s, const PlanNode &n, const ListCtx &ctx,
                                jb::View first);
  ListSource source_of(const ListCtx &ctx);
  /* The target keys whose links to parent the changed join rows of a
   * touch: (key, whether a join row links it now). */
  std::vector<std::pair<Texts, bool>> join_targets(const Assoc &a, jb::View parent);
  bool linked_still(const Assoc &a, jb::View parent, const Texts &target);
  bool link_moved(const Assoc &a, const RowState &s);
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
  Jsonb *filter_jsonb_ = nullptr;    /* filter_ as a jsonb, for load_list() */
  uint32_t event_table_ = 0;         /* the relid of the event's table */
  const TableInfo *table_ = nullptr; /* the event's table */
  std::vector<RowState> states_;     /* one per distinct pk (old, new) */
  SmallMemo<const PlanNode *> involves_, deep_;
  SmallMemo<uint32_t> rls_;
  std::vector<std::unique_ptr<PlanNode>> bare_nodes_; /* tables without assocs */
  /* link_moved() of an INSERT: whether join rows of the association name
   * the target key already */
  std::map<std::pair<const Assoc *, Texts>, bool> named_by_join_;
  jb::View lo_, hi_;                        /* the root rows' range (patch_root) */
  std::vector<Texts> root_touched_;         /* (patch_root) keys of the rows it changed, */
  std::vector<uint32_t> root_changed_rows_; /* positions of those changed in place, */
  bool root_moved_ = false;                 /* whether rows entered or left */
};

}  // namespace ectosync
