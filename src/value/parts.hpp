/*
 * parts.hpp: a held value cut into parts, so that a change costs the rows
 * it touches rather than the whole value.
 *
 * A value held in the session (held.cpp) is patched at every event that
 * concerns it, in every session that holds it.  As one jsonb, each patch
 * rewrites the whole value and the diff reads it all again: a post update
 * in a value of all 2,000 posts (600 kB) cost about 80 us per holder, most
 * of it copying and comparing bytes that did not change.  So a held value
 * is kept as a head (the value's members, with "rows" empty) and parts:
 * runs of consecutive root rows, each its own jsonb array of about
 * ectosync.held_part_size (16 kB), in primary key order.  sync_parts() (sync.hpp) rewrites only
 * the parts an event reaches and diff.hpp reads only those.
 *
 * Which part a root row belongs in follows from the first rows: a part
 * holds the keys from its own first row up to (not including) the first
 * row of the next part that has rows; the first such part also holds every
 * key below it.  A new root row therefore has exactly one place to go.
 */
#pragma once

extern "C" {
#include "postgres.h"
#include "utils/jsonb.h"
}

#include <cstddef>
#include <vector>

namespace ectosync {

struct PartedValue {
  Jsonb *head = nullptr;      /* the value made by load(), "rows": [] */
  std::vector<Jsonb *> parts; /* arrays of root rows; never none (one may be empty) */

  bool operator==(const PartedValue &o) const { return head == o.head && parts == o.parts; }
  bool operator!=(const PartedValue &o) const { return !(*this == o); }
};

/* value (made by load()) in parts, written in CurrentMemoryContext. */
PartedValue split_value(const Jsonb *value);

/* The value whole, as load() gives it, in CurrentMemoryContext. */
Jsonb *join_value(const PartedValue &value);

/* The bytes the value takes (head and parts). */
size_t value_bytes(const PartedValue &value);

/*
 * Keeps parts near ectosync.held_part_size after events changed them: a part past twice
 * that is split, an empty one dropped, small neighbours merged.  The value
 * stays equal; new parts are written in CurrentMemoryContext.  The parts
 * they replace are pfree'd when free_replaced (they must be palloc'd then),
 * else left to the caller (parts in shared memory, held_shared.hpp).
 */
void rebalance(PartedValue &value, bool free_replaced = true);

}  // namespace ectosync
