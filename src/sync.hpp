/*
 * sync.hpp: patching a value made by load() with logged events (sync.cpp).
 */
#pragma once

extern "C" {
#include "postgres.h"
#include "utils/jsonb.h"
}

#include <cstdint>
#include <vector>

namespace ectosync {

/* SQLSTATE ZE001: the value must be loaded again. */
constexpr int ERRCODE_ECTOSYNC_RELOAD = MAKE_SQLSTATE('Z', 'E', '0', '0', '1');

/*
 * value with the logged events after..upto applied in order: a new value in
 * (a child context of) CurrentMemoryContext, or value itself when none of
 * them touched it.  changed_by, if given, gets the seqs of the events that
 * changed it.
 * Throws Error(ERRCODE_ECTOSYNC_RELOAD) when the value must be reloaded (an
 * event left the log, a RELOAD marker of a table it holds, a restart).
 */
Jsonb *sync_events(Jsonb *value, uint64_t after, uint64_t upto,
                   std::vector<uint64_t> *changed_by = nullptr);

}  // namespace ectosync
