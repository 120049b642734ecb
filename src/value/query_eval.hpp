/*
 * query_eval.hpp: a list's query (plan.hpp's ListQuery) evaluated on rows
 * as values hold them, in the order load()'s SQL gives them: sync() decides
 * with it whether a changed row belongs in a list and where it goes.
 */
#pragma once

#include "core/plan.hpp"
#include "value/jsonb_writer.hpp"

#include <vector>

namespace ectosync {

/* Whether row (its columns as to_jsonb renders them) satisfies q's where. */
bool query_matches(const ListQuery &q, jb::View row);

/* Order (-1/0/1) of two rows of a list: q's order_by, then the primary key. */
int query_compare(const ListQuery &q, const std::vector<Column> &pk, jb::View a, jb::View b);

}  // namespace ectosync
