/*
 * xact_buffer.hpp: what the row trigger (capture.cpp) hands to this
 * transaction's buffer of events (xact_buffer.cpp, whose header comment
 * says when the buffer reaches the queue).
 */
#pragma once

#include "core/event.hpp"

#include <cstdint>

namespace ectosync {

/*
 * Appends one row's event.  Its columns are encoded straight into the body
 * buffer: a captured row allocates nothing of its own (the buffers grow by
 * doubling).  Past ectosync.max_xact_events, only its table is remembered.
 */
void buffer_event(uint32_t relid, Op op, const RawColumn *columns, int ncolumns);

/* A RELOAD marker for relid at commit, why: ReloadWhy bits (event.hpp). */
void remember_reload(uint32_t relid, uint16_t why);

/*
 * Roles changed (role_change.cpp): at commit, a RELOAD marker with why
 * kReloadRoles for every table of every database that uses ecto_sync.
 */
void roles_changed_at_commit();
/* Whether this transaction changed roles (a rolled-back subtransaction's too). */
bool xact_changed_roles();

/* Whether this transaction has an xid: it may have written. */
bool xact_wrote();

/*
 * This transaction changed relid's rows other than one by one: their shape
 * (schema_change.cpp), or which partitions hold them (watch.cpp).
 */
void note_changed_wholesale(uint32_t relid);

/*
 * Whether trigger fired in this transaction already, and did its work: its
 * RELOAD markers are remembered (a subtransaction rolled back keeps them,
 * one reload too many), and note_fired() followed.  The policy triggers
 * (policy_sources.cpp) queue the same markers however many rows a
 * statement writes.
 */
bool fired_before(uint32_t trigger);
void note_fired(uint32_t trigger);

/*
 * Whether this transaction changed relid, a watched table: its rows in the
 * buffer, a RELOAD marker, rows of the running statement whose capture
 * trigger has yet to fire, its schema, or its partitions; or a table its
 * policies read, when row level security applies to the caller.
 */
bool xact_changed(uint32_t relid);

}  // namespace ectosync
