/*
 * watch.hpp: what the event triggers ask of watch.cpp.
 */
#pragma once

#include <cstdint>

namespace ectosync {

/*
 * Re-resolves every watch and makes the capture triggers and
 * ectosync.watched_tables say what they need now (as the bootstrap
 * superuser, after the watches lock).  after_drop: watches that needed a
 * dropped table or column go, with a WARNING.  May throw.
 */
void refresh_watches(bool after_drop);

/* Whether refresh_watches() is running: the event triggers that its own
 * statements (CREATE TRIGGER, ALTER TABLE ... ENABLE) fire have nothing to
 * do. */
bool refreshing_watches();

/*
 * Table relid's capture triggers fire ALWAYS again if an ALTER TABLE
 * disabled them (or made them fire in one session_replication_role only);
 * one found disabled counts as a capture restart.  May throw.
 */
void keep_capture_enabled(uint32_t relid);

}  // namespace ectosync
