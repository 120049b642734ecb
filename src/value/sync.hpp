/*
 * sync.hpp: patching a value made by load() with logged events (sync.cpp).
 */
#pragma once

extern "C" {
#include "postgres.h"
#include "utils/jsonb.h"
}

#include "core/event.hpp"
#include "value/keys.hpp"
#include "value/parts.hpp"

#include <cstdint>
#include <functional>
#include <vector>

namespace ectosync {

/* SQLSTATE ZE001: the value must be loaded again. */
constexpr int ERRCODE_ECTOSYNC_RELOAD = MAKE_SQLSTATE('Z', 'E', '0', '0', '1');

/*
 * Per part of a value (parts.hpp), the root rows that events changed,
 * added or removed: the only rows a diff needs to read.  By primary key;
 * and while no root row entered or left the part (moved), also by
 * position, the same in the old part and the new.
 */
struct PartTouch {
  std::vector<Texts> keys;
  std::vector<uint32_t> rows; /* positions of the rows changed in place */
  bool moved = false;
};
using TouchedRows = std::vector<PartTouch>;

/*
 * The logged events after..upto applied in order to a value held in parts
 * (parts.hpp): each part an event changes is replaced by a new one written
 * in CurrentMemoryContext (the parts it replaces are left alone, except
 * those this call made), so an event costs the parts it reaches.  The head
 * is left as it is (its "seq" too).  changed_by, if given, gets the seqs of
 * the events that changed some part; touched, if given, the root rows
 * they changed, part by part (added to what it holds).
 * may_concern, if given, says which events may change the value as it is
 * when the call starts (a held value's interest): others are skipped
 * until one changed it.
 * Throws Error(ERRCODE_ECTOSYNC_RELOAD) when the value must be reloaded (an
 * event left the log, a RELOAD marker of a table it holds, a restart).
 */
/*
 * While one lives, sync_parts() decodes each logged event once, however
 * many values read it (wait_changes() of a session's values).  Events are
 * immutable once logged; the memo is bounded, and ends with the scope.
 */
class EventMemoScope {
 public:
  EventMemoScope();
  ~EventMemoScope();
  EventMemoScope(const EventMemoScope &) = delete;
  EventMemoScope &operator=(const EventMemoScope &) = delete;

 private:
  bool owner_ = false;
};

void sync_parts(const Plan &plan, PartedValue &value, uint64_t after, uint64_t upto,
                std::vector<uint64_t> *changed_by = nullptr, TouchedRows *touched = nullptr,
                const std::function<bool(const Event &)> &may_concern = {});

}  // namespace ectosync
