/*
 * watch.hpp: what the event triggers ask of watch.cpp.
 */
#pragma once

#include <cstdint>
#include <set>

namespace ectosync {

struct Plan;

/*
 * Throws 55000 unless the changes a value of plan needs are captured:
 * every table of it, with its key, its associations' columns and its join
 * tables' ends (captured.cpp).  load() and every reload of a held value
 * ask it after reading the value's seq.
 */
void check_captured(const Plan &plan);

/*
 * Re-resolves every watch and makes the capture triggers and
 * ectosync.watched_tables say what they need now (as the bootstrap
 * superuser, after the watches lock).  A watch that needed a table or
 * column that is gone goes, with a WARNING; any other that no longer
 * resolves (a rename, a foreign key dropped) keeps its triggers, with a
 * WARNING.  The values loaded under a capture that narrows reload
 * (captured.cpp).  May throw.
 */
void refresh_watches();

/* Whether refresh_watches() is running: the event triggers that its own
 * statements (CREATE TRIGGER, ALTER TABLE ... ENABLE) fire have nothing to
 * do. */
bool refreshing_watches();

/*
 * Table relid's capture triggers fire ALWAYS again if an ALTER TABLE
 * disabled them (or made them fire in one session_replication_role only);
 * one found disabled counts as a capture restart (of watched, when relid
 * is a partition of that watched table).  May throw.
 */
void keep_capture_enabled(uint32_t relid, uint32_t watched = 0);

}  // namespace ectosync
