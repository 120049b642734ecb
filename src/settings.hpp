/*
 * settings.hpp: ecto_sync's GUCs and the module-wide entry points that
 * _PG_init calls.  Defaults and meanings are documented in README.md.
 */
#pragma once

#define ECTOSYNC_VERSION "0.2.0"

namespace ectosync {

struct Settings {
  int cache_size_kb;   /* ectosync.cache_size */
  int queue_size_kb;   /* ectosync.queue_size, per database */
  int event_log_size;  /* ectosync.event_log_size, events per database */
  int max_databases;   /* ectosync.max_databases */
  int max_xact_events; /* ectosync.max_xact_events */
  int batch_size;      /* ectosync.batch_size */
  int batch_delay_ms;  /* ectosync.batch_delay */
  int load_window_s;   /* ectosync.load_window; -1: always */
  int max_held_values; /* ectosync.max_held_values, all databases */
  int interest_bytes;  /* ectosync.interest_size: a held value's Bloom filter (interest.hpp) */
  int held_part_bytes; /* ectosync.held_part_size (parts.hpp) */
  int held_shared_kb;  /* ectosync.held_shared_memory (held_shared.hpp) */
  int max_role_share;  /* ectosync.max_role_share, percent */
  bool load_unwatched; /* ectosync.load_unwatched: load() reads values no watch captures */
};

/*
 * How much of a shared resource of `total` units one role may take: its
 * ectosync.max_role_share, at least one unit.  Superusers are not limited:
 * the share keeps one role's abuse from reaching the others.
 */
long role_share(long total, Oid role = InvalidOid); /* InvalidOid: the current user */

extern Settings settings;
extern bool loaded_at_startup;

/* Called by _PG_init, which says what each installs. */
void shmem_init();               /* shmem/shmem.cpp */
void capture_init();             /* capture/xact_buffer.cpp */
void role_change_init();         /* capture/role_change.cpp */
void policy_sources_init();      /* capture/policy_sources.cpp */
void catalog_init();             /* value/catalog.cpp */
void table_names_init();         /* pg/table_names.cpp */
void worker_init();              /* worker/table_meta.cpp */
void held_rollback_init();       /* held/rollback.cpp */
void worker_register_launcher(); /* worker/launcher.cpp */

}  // namespace ectosync
