/*
 * query_eval.cpp: where and order_by of a list's query on jsonb rows (see
 * query_eval.hpp).  The comparisons are keys.hpp's, which are the ones
 * load()'s SQL makes (load.cpp): numbers numerically, strings bytewise,
 * times in time order, false before true.
 */
#include "value/query_eval.hpp"

#include "value/keys.hpp"

namespace ectosync {

namespace {

bool all_hold(const std::vector<Condition> &conditions, jb::View row);

/* Whether condition c is true of row (SQL's: a comparison with NULL is not;
 * without NOT, not true and unknown are alike). */
bool holds(const Condition &c, jb::View row) {
  if (c.op == CmpOp::Or) {
    for (const auto &where : c.any)
      if (all_hold(where, row)) return true;
    return false;
  }
  std::optional<jb::Elem> e = row.get(c.column.name);
  bool null = !e || e->is_null();
  if (c.op == CmpOp::IsNull) return null;
  if (c.op == CmpOp::NotNull) return !null;
  if (null) return false;
  auto cmp = [&](const std::string &value) {
    return compare_elem_part(c.column.kind, e, make_key({c.column}, {value})[0]);
  };
  switch (c.op) {
    case CmpOp::Eq:
      return cmp(c.values.at(0)) == 0;
    case CmpOp::Ne:
      return cmp(c.values.at(0)) != 0;
    case CmpOp::Lt:
      return cmp(c.values.at(0)) < 0;
    case CmpOp::Le:
      return cmp(c.values.at(0)) <= 0;
    case CmpOp::Gt:
      return cmp(c.values.at(0)) > 0;
    case CmpOp::Ge:
      return cmp(c.values.at(0)) >= 0;
    case CmpOp::In:
      for (const std::string &v : c.values)
        if (cmp(v) == 0) return true;
      return false;
    default:
      return false;
  }
}

bool all_hold(const std::vector<Condition> &conditions, jb::View row) {
  for (const Condition &c : conditions)
    if (!holds(c, row)) return false;
  return true;
}

}  // namespace

bool query_matches(const ListQuery &q, jb::View row) {
  return all_hold(q.where, row);
}

int query_compare(const ListQuery &q, const std::vector<Column> &pk, jb::View a, jb::View b) {
  for (const OrderKey &k : q.order) {
    std::optional<jb::Elem> x = a.get(k.column.name), y = b.get(k.column.name);
    bool xn = !x || x->is_null(), yn = !y || y->is_null();
    int cmp;
    if (xn || yn)
      cmp = xn == yn ? 0 : ((xn == k.nulls_first) ? -1 : 1);
    else
      cmp = k.desc ? -compare_elems(k.column.kind, x, y) : compare_elems(k.column.kind, x, y);
    if (cmp != 0) return cmp;
  }
  for (const Column &c : pk)
    if (int cmp = compare_elems(c.kind, a.get(c.name), b.get(c.name))) return cmp;
  return 0;
}

}  // namespace ectosync
