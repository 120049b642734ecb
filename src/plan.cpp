/*
 * plan.cpp: the few functions of plan.hpp's value shape.  Pure C++.
 */
#include "plan.hpp"

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
