/*
 * patch_window.cpp: the Patcher's lists with a query of their own order or
 * window ($query's order_by, limit, offset: query.hpp).
 *
 * Such a list is held in its query's order, then by primary key, so that a
 * row is found by a scan rather than by key, and a changed row leaves its
 * place and enters where its current columns sort (a sort key that changed
 * moves the row).  A window of limit rows from the first (offset 0) keeps
 * every row that sorts before its last one, so:
 *  - a row entering below its last row pushes the last one out;
 *  - a row entering beyond it does not enter (nothing changes), unless the
 *    window was not full (then the list holds every row there is);
 *  - a row that leaves a full window makes room for the rows that follow:
 *    they are read once, as the caller, in the query's order, skipping the
 *    rows the window holds (load_list()), so the read follows the order's
 *    index where there is one, never the whole query.
 * Rows are placed by the states the list holds, so the list stays sorted
 * while later events are pending; each of those events places its rows
 * again, and after the last one the list equals a fresh load().
 * A window with an offset does not hold the rows ahead of it (before its
 * first row), only how many there are.  A change that keeps that number
 * and the window full patches it as above; one that may change it (a row
 * that sorts ahead of the first row now, or did before the change) shifts
 * the window, and one that takes a row out of a full window needs the
 * rows that follow: either reads the window again.  Where a row was before the change only the
 * event's own old values tell (the states are the latest, maybe of later
 * events, whose old values tell in turn); without them a row that the
 * window does not hold may have been ahead.
 */
#include "value/catalog.hpp"
#include "value/keys.hpp"
#include "value/patcher.hpp"
#include "value/query_eval.hpp"

#include <algorithm>
#include <optional>
#include <vector>

namespace ectosync {

namespace {

/* A row of a list being patched: its columns as the list orders them, and
 * either its index in the old list or its new content. */
struct Item {
  jb::View cols;
  std::optional<uint32_t> src;
  std::optional<jb::Node> node;
};

}  // namespace

ListSource Patcher::source_of(const ListCtx &ctx) {
  ListSource source;
  if (ctx.kind == ListCtx::Root) {
    /* the value's filter as a jsonb of its own, made when a read needs it */
    if (!filter_jsonb_ && filter_.is_object()) {
      jb::Node filter = jb::Node::object();
      for (uint32_t i = 0; i < filter_.size(); i++)
        filter.set(filter_.key(i), jb::Node::copy(filter_.value(i)));
      filter_jsonb_ = jb::to_jsonb(filter);
    }
    source.filter = filter_jsonb_;
    return source;
  }
  source.assoc = ctx.assoc;
  source.owner = row_texts(ctx.parent, ctx.assoc->owner_cols);
  return source;
}

/* The event's old values of cols; nullopt when it carries none of one. */
std::optional<Texts> Patcher::old_texts(const std::vector<Column> &cols) {
  Texts out;
  for (const Column &c : cols) {
    const ColumnChange *cc = ev_.column(c.attnum);
    if (!cc || !cc->has_old) return std::nullopt;
    out.push_back(cc->old_value);
  }
  return out;
}

/*
 * Order (-1/0/1) of row against the event's row as it was before the event,
 * by q's order and then the primary key; nullopt when the event carries no
 * old value of a column that decides.
 */
std::optional<int> Patcher::compare_to_old(const ListQuery &q, const std::vector<Column> &pk,
                                           jb::View row) {
  auto compare = [&](const Column &col, bool desc, bool nulls_first) -> std::optional<int> {
    std::optional<Texts> old = old_texts({col});
    if (!old) return std::nullopt;
    std::optional<jb::Elem> e = row.get(col.name);
    bool en = !e || e->is_null(), on = !old->front();
    if (en || on) return en == on ? 0 : ((en == nulls_first) ? -1 : 1);
    int cmp = compare_elem_part(col.kind, e, make_key({col}, *old)[0]);
    return desc ? -cmp : cmp;
  };
  for (const OrderKey &k : q.order) {
    std::optional<int> cmp = compare(k.column, k.desc, k.nulls_first);
    if (!cmp || *cmp) return cmp;
  }
  for (const Column &c : pk) {
    std::optional<int> cmp = compare(c, false, false);
    if (!cmp || *cmp) return cmp;
  }
  return 0;
}

/*
 * Whether the event's row s, which a window with an offset does not hold,
 * sorted ahead of the window's first row (first; invalid: the window is
 * empty, and every row of the list is ahead) before the event; nullopt
 * when the event's old values cannot tell.
 */
std::optional<bool> Patcher::was_ahead(const RowState &s, const PlanNode &n, const ListCtx &ctx,
                                       jb::View first) {
  if (ev_.op == Op::Insert) return false;
  /* Under row level security the row may be one the caller cannot see:
   * its old values must decide nothing (the window is read again), or
   * whether the caller's value moved would tell where the row was. */
  if (rls(event_table_)) return std::nullopt;
  if (s.texts != ev_.old_pk()) return std::nullopt; /* the new key of a key change */
  if (ctx.kind == ListCtx::HasMany) {
    std::optional<Texts> link = old_texts(ctx.assoc->target_cols);
    if (!link) return std::nullopt;
    /* (a NULL link was in no list) */
    if (has_null(*link) ||
        !same_texts(ctx.assoc->target_cols, *link, row_texts(ctx.parent, ctx.assoc->owner_cols)))
      return false; /* another list's */
  }
  std::optional<int> order =
      first.valid() ? compare_to_old(n.query, n.table.pk, first) : std::optional<int>(1);
  if (!order) return std::nullopt;
  if (*order < 0) return false; /* it sorted after the first row */
  /* It sorted ahead, and was ahead if it was in the list then: if nothing
   * but the parent (told above) decides that.  The old values of a where's
   * or a filter's columns may be missing, and a many_to_many's links are
   * known only as they are now. */
  bool filtered = ctx.kind == ListCtx::Root && filter_.is_object() && filter_.size() > 0;
  if (n.query.where.empty() && !filtered && ctx.kind != ListCtx::ManyToMany) return true;
  return std::nullopt;
}

/* The list's window read again. */
jb::Node Patcher::reread_window(const PlanNode &n, const ListCtx &ctx) {
  Jsonb *rows = load_list(n, source_of(ctx));
  if (!rows || !JB_ROOT_IS_ARRAY(rows)) return jb::Node::array();
  if (ctx.kind == ListCtx::Root) root_moved_ = true;
  return jb::Node::copy(jb::root_elem(rows));
}

/*
 * A list of node n with a query of its own order or window (see the header
 * comment): the changed rows of T leave and enter in the query's order, the
 * window is kept full, and rows whose associations involve T are patched.
 */
std::optional<jb::Node> Patcher::patch_query_list(jb::View list, const PlanNode &n,
                                                  const ListCtx &ctx) {
  const ListQuery &q = n.query;
  const std::vector<Column> &pk = n.table.pk;
  /* A window with an offset: its first row, and whether a row sorts ahead of it. */
  bool offset = q.offset > 0;
  jb::View first = list.size() ? jb::View(list.at(0)) : jb::View();
  auto ahead = [&](jb::View row) { return !first.valid() || query_compare(q, pk, row, first) < 0; };
  std::vector<Item> items;
  items.reserve(list.size());
  for (uint32_t i = 0; i < list.size(); i++) items.push_back({jb::View(list.at(i)), i, {}});
  /* Rows may follow the window: it is full. */
  bool more = q.limit && list.size() >= *q.limit;
  bool changed = false;
  std::vector<Item> entering;
  auto find = [&](const std::vector<Column> &cols, const Key &key) -> std::optional<size_t> {
    for (size_t i = 0; i < items.size(); i++)
      if (row_matches_key(items[i].cols, cols, key)) return i;
    return std::nullopt;
  };
  auto remove = [&](size_t at) {
    items.erase(items.begin() + at);
    changed = true;
  };

  if (n.table.relid == event_table_) {
    for (const RowState &s : states_) {
      std::optional<size_t> at = find(pk, s.key);
      bool belongs = s.exists && query_matches(q, s.row);
      if (belongs && ctx.kind == ListCtx::Root) belongs = filter_matches(s.row);
      if (belongs && ctx.kind == ListCtx::HasMany)
        belongs = rows_match(s.row, ctx.assoc->target_cols, ctx.parent, ctx.assoc->owner_cols);
      /* A linked row outside the list may belong now: it may have come to
       * match the where, or to sort inside the window. */
      bool moved = ctx.kind == ListCtx::ManyToMany && link_moved(*ctx.assoc, s);
      if (belongs && ctx.kind == ListCtx::ManyToMany && (!at || moved))
        belongs = (moved || q.windowed() || !q.where.empty() || rls(event_table_)) &&
                  linked(*ctx.assoc, ctx.parent, s);
      if (offset) {
        /* A row that goes ahead, or comes from there, shifts the window;
         * one that stays ahead is none of its rows. */
        bool now_ahead = belongs && ahead(s.row);
        std::optional<bool> was = at ? false : was_ahead(s, n, ctx, first);
        if (!was || *was != now_ahead) return reread_window(n, ctx);
        if (now_ahead) belongs = false;
      }
      std::optional<jb::Node> row;
      if (belongs && at)
        row = patch_row(list.at(*items[*at].src), n, &s);
      else if (belongs)
        row = build_row(n, s);
      if (at) remove(*at);
      if (row) entering.push_back({s.row, std::nullopt, std::move(row)});
    }
  }
  if (ctx.kind == ListCtx::ManyToMany && ctx.assoc->join &&
      ctx.assoc->join->relid == event_table_) {
    const Assoc &a = *ctx.assoc;
    for (const auto &[tkey, now] : join_targets(a, ctx.parent)) {
      std::optional<size_t> at = find(a.target_cols, make_key(a.target_cols, tkey));
      if (at && !now && !linked_still(a, ctx.parent, tkey)) remove(*at);
      if (at || (!now && !offset)) continue;
      std::optional<jb::Elem> row = load_one(n, a.target_cols, tkey);
      /* A link of a row ahead changes how many rows are ahead.  (A row not
       * found now may have been ahead when the link changed.) */
      if (offset && (!row || ahead(jb::View(*row)))) return reread_window(n, ctx);
      if (row && now) entering.push_back({jb::View(*row), std::nullopt, jb::Node::copy(*row)});
    }
  }
  if (deep(n))
    for (Item &item : items)
      if (item.src && !item.node)
        if ((item.node = patch_row(list.at(*item.src), n, nullptr))) changed = true;

  /* Rows enter where they sort among the rows the list holds. */
  auto place = [&](Item item) {
    auto at = std::upper_bound(items.begin(), items.end(), item, [&](const Item &a, const Item &b) {
      return query_compare(q, pk, a.cols, b.cols) < 0;
    });
    if (more && at == items.end()) return; /* beyond a full window */
    items.insert(at, std::move(item));
    changed = true;
  };
  for (Item &item : entering) place(std::move(item));
  if (q.limit && items.size() > static_cast<size_t>(*q.limit)) {
    items.resize(*q.limit);
    more = true;
  }
  if (more && items.size() < static_cast<size_t>(*q.limit)) {
    /* A page's next rows cannot be read from its first row on: a row the
     * page has ahead may sort after that row now (its event pending), and
     * would enter without its event ever shifting the page. */
    if (offset) return reread_window(n, ctx);
    std::vector<Texts> held;
    for (const Item &item : items) held.push_back(row_texts(item.cols, pk));
    Jsonb *next = load_list(n, source_of(ctx), &held, *q.limit - items.size());
    jb::View rows = next ? jb::View(next) : jb::View();
    for (uint32_t i = 0; rows.is_array() && i < rows.size(); i++) {
      jb::Elem row = rows.at(i);
      more = false; /* (what the read found is what follows) */
      place({jb::View(row), std::nullopt, jb::Node::copy(row)});
    }
  }
  if (!changed) return std::nullopt;
  if (ctx.kind == ListCtx::Root) root_moved_ = true;
  jb::Node out = jb::Node::array();
  for (Item &item : items)
    out.push(item.node ? std::move(*item.node) : jb::Node::copy(list.at(*item.src)));
  return out;
}

}  // namespace ectosync
