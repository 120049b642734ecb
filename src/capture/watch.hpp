/*
 * watch.hpp: what the event triggers ask of watch.cpp.
 */
#pragma once

#include <cstdint>
#include <set>

namespace ectosync {

/*
 * Re-resolves every watch and makes the capture triggers and
 * ectosync.watched_tables say what they need now (as the bootstrap
 * superuser, after the watches lock).  A watch that needed a table or
 * column that is gone goes, with a WARNING, and so does one of the dropped
 * tables (those a DROP concerned) that no longer resolves; any other that
 * no longer resolves (a rename) keeps its triggers, with a WARNING.  May
 * throw.
 */
void refresh_watches(const std::set<uint32_t> &dropped = {});

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
