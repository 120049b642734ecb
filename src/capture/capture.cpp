/*
 * capture.cpp: the row trigger that records changes into this
 * transaction's buffer of events (xact_buffer.cpp, which hands them to the
 * database's queue at commit).
 *
 * watch() installs, on every captured table,
 *   AFTER INSERT OR UPDATE OR DELETE ... FOR EACH ROW
 *     EXECUTE FUNCTION ectosync.capture('<n>', <n pk columns>, <tracked columns>)
 *   (each column as '<attnum>:<name>': see trigger_attnum())
 *   AFTER TRUNCATE ... FOR EACH STATEMENT EXECUTE FUNCTION ectosync.capture()
 *
 * On a partitioned table PostgreSQL clones the row trigger to every
 * partition; the clone reports rows under the partitioned table (its
 * attnums), and each partition has a TRUNCATE trigger of its own with the
 * argument 'partition' (triggers.cpp).
 *
 * Row triggers, not statement triggers with transition tables: most writes
 * are single-row statements, and for those the per-statement cost of
 * transition tables (capture state, tuplestores, a call per statement and
 * per cascaded statement, even one that touched no row) exceeds the row
 * trigger's queueing and refetch: the bench's write transaction took 11%
 * more instructions that way (callgrind, PostgreSQL 15).
 *
 * Per row, the trigger encodes the key columns' old and new values (text, as
 * to_jsonb renders them under the pinned settings: key_text()) into the
 * buffer of this transaction (buffer_event()); a TRUNCATE remembers a
 * RELOAD marker for its table (remember_reload()).  Nothing reaches shared
 * memory before the commit (xact_buffer.cpp's header comment).
 */
#include "capture/xact_buffer.hpp"

#include "pg/pg_boundary.hpp"
#include "shmem/shmem.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/partition.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
}

#include <cstring>

namespace ectosync {

/* ---- the trigger ---- */

/*
 * What the row trigger needs of its key columns, worked out from its
 * arguments on the first row a statement captures and kept in fn_extra
 * (which lives as long as the statement's executor state), so that the
 * rows of a bulk statement parse and look up nothing.
 */
struct KeyColumn {
  int16 attnum;      /* the watched table's: events carry it */
  int16 read_attnum; /* the trigger's relation's (a partition's may differ) */
  bool is_pk;
  Oid typid;
  FmgrInfo output; /* not set for int2/int4/int8 (key_text renders them) */
};

struct TriggerInfo {
  Oid tgoid;
  Oid relid; /* the watched table: the partitioned one for a partition's rows */
  int nkeys;
  KeyColumn keys[FLEXIBLE_ARRAY_MEMBER];
};

static bool rendered_directly(Oid typid) {
  switch (typid) {
    case INT8OID:
    case INT4OID:
    case INT2OID:
    case BOOLOID:
    case BYTEAOID:
    case DATEOID:
    case TIMESTAMPOID:
    case TIMESTAMPTZOID:
      return true;
    default:
      return false;
  }
}

/*
 * The column the trigger's argument i names: "<attnum>:<name>" (watch()
 * writes both), or a bare attnum (ecto_sync 0.1.0's triggers).  The
 * attnum wins while its column has the name; else the column of that name
 * (a dump restored the trigger onto a table whose attnums differ, as
 * after a dropped column); else the attnum (the column was renamed, and
 * the trigger not rebuilt yet).
 */
static int16 trigger_attnum(Trigger *trigger, int i, Relation rel) {
  const char *arg = trigger->tgargs[i];
  TupleDesc desc = RelationGetDescr(rel);
  char *end;
  long attnum = strtol(arg, &end, 10);
  const char *name = *end == ':' ? end + 1 : nullptr;
  auto live = [&](long a) {
    return a > 0 && a <= desc->natts && !TupleDescAttr(desc, a - 1)->attisdropped;
  };
  bool well_formed = end != arg && (*end == '\0' || name);
  if (well_formed && name &&
      !(live(attnum) && strcmp(NameStr(TupleDescAttr(desc, attnum - 1)->attname), name) == 0)) {
    for (int a = 0; a < desc->natts; a++) {
      Form_pg_attribute att = TupleDescAttr(desc, a);
      if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0) return att->attnum;
    }
  }
  if (!well_formed || !live(attnum))
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                    errmsg("ecto_sync: trigger \"%s\" on \"%s\" names column \"%s\", which the "
                           "table does not have",
                           trigger->tgname, RelationGetRelationName(rel), arg),
                    errhint("Run ectosync.watch() again to reinstall the trigger.")));
  return (int16)attnum;
}

/* ---- partitions ---- */

/*
 * The table whose rows a partition's are: the top of its partition tree.
 * watch() puts the capture trigger on a partitioned table, never on a
 * partition (assoc.cpp refuses them in plans), and PostgreSQL clones it to
 * every partition, those created or attached later included: so the table
 * that watch() named is the root.
 */
static Oid partition_root(Oid relid) {
  List *ancestors = get_partition_ancestors(relid);
  Oid root = ancestors != NIL ? llast_oid(ancestors) : relid;
  list_free(ancestors);
  return root;
}

/*
 * The table a trigger reports rows under: its relation's own, or, for a
 * clone of the trigger that watch() created on a partitioned table
 * (tgisclone), the partitioned table's.
 */
static Oid watched_relid(Trigger *trigger, Relation rel) {
  if (trigger->tgisclone && rel->rd_rel->relispartition)
    return partition_root(RelationGetRelid(rel));
  return RelationGetRelid(rel);
}

/*
 * The table a TRUNCATE trigger reports: its relation, or for the trigger
 * that watch() puts on each partition (argument 'partition': statement
 * triggers are not cloned, and a TRUNCATE of a partition fires only its
 * own), the partitioned table.
 */
static Oid truncated_relid(TriggerData *trigdata) {
  Trigger *trigger = trigdata->tg_trigger;
  Relation rel = trigdata->tg_relation;
  if (trigger->tgnargs == 1 && strcmp(trigger->tgargs[0], "partition") == 0 &&
      rel->rd_rel->relispartition)
    return partition_root(RelationGetRelid(rel));
  return RelationGetRelid(rel);
}

/*
 * Sets key.attnum, the watched table's column that trigger argument arg
 * names, and key.read_attnum, the same column in the trigger's relation:
 * a partition's column may have another number (a partition attached with
 * a dropped column, or made before its parent dropped one).  Found by
 * name, through the catalog caches: the partitioned table is not opened
 * (a writer of a partition does not lock it).
 */
static void key_attnums(Trigger *trigger, int arg, Relation rel, Oid watched, KeyColumn &key) {
  if (watched == RelationGetRelid(rel)) {
    key.attnum = key.read_attnum = trigger_attnum(trigger, arg, rel);
    return;
  }
  /* As trigger_attnum() reads "<attnum>:<name>", against the watched table. */
  char *end;
  long value = strtol(trigger->tgargs[arg], &end, 10);
  const char *arg_name = *end == ':' ? end + 1 : nullptr;
  char *name = value > 0 && value <= MaxAttrNumber ? get_attname(watched, value, true) : nullptr;
  if (arg_name && (!name || strcmp(name, arg_name) != 0)) {
    AttrNumber by_name = get_attnum(watched, arg_name);
    if (by_name > 0) {
      value = by_name;
      name = pstrdup(arg_name);
    }
  }
  AttrNumber attnum = name ? get_attnum(RelationGetRelid(rel), name) : InvalidAttrNumber;
  if (attnum <= 0)
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                    errmsg("ecto_sync: trigger \"%s\" on partition \"%s\" names column %s of "
                           "\"%s\", which the partition does not have",
                           trigger->tgname, RelationGetRelationName(rel), trigger->tgargs[arg],
                           get_rel_name(watched)),
                    errhint("Run ectosync.watch() again to reinstall the trigger.")));
  key.attnum = (int16)value;
  key.read_attnum = (int16)attnum;
}

static TriggerInfo *trigger_info(FunctionCallInfo fcinfo, TriggerData *trigdata) {
  Trigger *trigger = trigdata->tg_trigger;
  TriggerInfo *info = (TriggerInfo *)fcinfo->flinfo->fn_extra;
  if (info && info->tgoid == trigger->tgoid) return info;
  Relation rel = trigdata->tg_relation;
  TupleDesc desc = RelationGetDescr(rel);
  int npk = trigger->tgnargs > 0 ? atoi(trigger->tgargs[0]) : 0;
  if (npk < 1 || npk >= trigger->tgnargs)
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                    errmsg("ecto_sync: trigger \"%s\" on \"%s\" has malformed arguments",
                           trigger->tgname, RelationGetRelationName(rel)),
                    errhint("Run ectosync.watch() again to reinstall the trigger.")));
  int nkeys = trigger->tgnargs - 1;
  MemoryContext cxt = fcinfo->flinfo->fn_mcxt;
  info = (TriggerInfo *)MemoryContextAllocZero(
      cxt, offsetof(TriggerInfo, keys) + sizeof(KeyColumn) * nkeys);
  info->tgoid = trigger->tgoid;
  info->relid = watched_relid(trigger, rel);
  info->nkeys = nkeys;
  for (int i = 0; i < nkeys; i++) {
    KeyColumn &key = info->keys[i];
    key_attnums(trigger, i + 1, rel, info->relid, key);
    key.is_pk = i < npk;
    key.typid = getBaseType(TupleDescAttr(desc, key.read_attnum - 1)->atttypid);
    if (!rendered_directly(key.typid)) {
      Oid output;
      bool varlena;
      getTypeOutputInfo(key.typid, &output, &varlena);
      fmgr_info_cxt(output, &key.output, cxt);
    }
  }
  fcinfo->flinfo->fn_extra = info;
  return info;
}

/* An UPDATE that rewrote the row byte for byte changes nothing we track. */
static bool tuples_identical(HeapTuple a, HeapTuple b) {
  HeapTupleHeader ha = a->t_data, hb = b->t_data;
  if (a->t_len != b->t_len || ha->t_hoff != hb->t_hoff ||
      HeapTupleHeaderGetNatts(ha) != HeapTupleHeaderGetNatts(hb) ||
      (ha->t_infomask & HEAP_HASNULL) != (hb->t_infomask & HEAP_HASNULL))
    return false;
  size_t from = offsetof(HeapTupleHeaderData, t_bits);
  return memcmp((char *)ha + from, (char *)hb + from, a->t_len - from) == 0;
}

/*
 * A boolean, bytea, date, timestamp or timestamptz key as to_jsonb renders
 * it under ecto_sync's pinned settings (TimeZone UTC, bytea_output hex),
 * whatever the writer's DateStyle, TimeZone and bytea_output:
 * "true"/"false", "\\x" and hex digits, ISO 8601 times, timestamptz in UTC
 * ("+00:00").  These are the texts values hold (keys.hpp), the worker's
 * cache keys and what interest tokens hash: a filter on a bytea foreign key
 * is woken by its rows only if they are written alike.  (time and timetz
 * render alike under every DateStyle.)
 */
static const char *json_key_text(Datum value, Oid typid, size_t *len) {
  static const int utc = 0;
  char *text;
  if (typid == BOOLOID) {
    text = (char *)(DatumGetBool(value) ? "true" : "false");
  } else if (typid == BYTEAOID) {
    bytea *bytes = DatumGetByteaPP(value);
    size_t n = VARSIZE_ANY_EXHDR(bytes);
    text = (char *)palloc(2 * n + 3);
    memcpy(text, "\\x", 2);
    text[2 + hex_encode(VARDATA_ANY(bytes), n, text + 2)] = '\0';
  } else {
    text = JsonEncodeDateTime((char *)palloc(MAXDATELEN + 1), value, typid, &utc);
  }
  *len = strlen(text);
  return text;
}

/*
 * A key value as events carry it (nullptr: SQL NULL): as to_jsonb renders
 * it, which is the text its type's output function makes except for the
 * types of json_key_text().  Integers, the usual keys, are rendered into
 * `digits` by the same routines int2out/int4out/int8out use, without the
 * function call and its palloc.
 */
static const char *key_text(HeapTuple tuple, TupleDesc desc, KeyColumn &key, char *digits,
                            size_t *len) {
  bool isnull;
  Datum value = heap_getattr(tuple, key.read_attnum, desc, &isnull);
  *len = 0;
  if (isnull) return nullptr;
  switch (key.typid) {
    case INT8OID:
      *len = pg_lltoa(DatumGetInt64(value), digits);
      return digits;
    case INT4OID:
      *len = pg_ltoa(DatumGetInt32(value), digits);
      return digits;
    case INT2OID:
      *len = pg_ltoa(DatumGetInt16(value), digits);
      return digits;
    case BOOLOID:
    case BYTEAOID:
    case DATEOID:
    case TIMESTAMPOID:
    case TIMESTAMPTZOID:
      return json_key_text(value, key.typid, len);
    default: {
      char *text = OutputFunctionCall(&key.output, value);
      *len = strlen(text);
      return text;
    }
  }
}

static void require_after_trigger(FunctionCallInfo fcinfo) {
  if (!CALLED_AS_TRIGGER(fcinfo) ||
      !TRIGGER_FIRED_AFTER(((TriggerData *)fcinfo->context)->tg_event))
    ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                    errmsg("ectosync.capture() must be called as an AFTER trigger")));
}

}  // namespace ectosync

using namespace ectosync;

/* Keys of up to this many columns are rendered into stack buffers. */
constexpr int kStackKeys = 8;
typedef char Digits[2][MAXINT8LEN + 1]; /* a key's old and new integer text */

ECTOSYNC_FUNCTION(ectosync_capture) {
  require_after_trigger(fcinfo);
  TriggerData *trigdata = (TriggerData *)fcinfo->context;
  attach_database_slot();

  if (TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event)) {
    Oid relid = truncated_relid(trigdata);
    remember_reload(relid, kReloadTruncate);
    return PointerGetDatum(nullptr);
  }
  if (!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
    ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                    errmsg("ectosync.capture() must be a FOR EACH ROW trigger, or AFTER "
                           "TRUNCATE")));

  HeapTuple old_tuple = nullptr, new_tuple = nullptr;
  Op op;
  if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event)) {
    new_tuple = trigdata->tg_trigtuple;
    op = Op::Insert;
  } else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event)) {
    old_tuple = trigdata->tg_trigtuple;
    op = Op::Delete;
  } else {
    old_tuple = trigdata->tg_trigtuple;
    new_tuple = trigdata->tg_newtuple;
    op = Op::Update;
    if (tuples_identical(old_tuple, new_tuple)) return PointerGetDatum(nullptr);
  }

  /*
   * The C phase: read every key value with PostgreSQL's functions, which may
   * raise errors, before any C++ object exists.  The texts live in the
   * trigger's per-row memory context or on this stack.
   */
  TriggerInfo *info = trigger_info(fcinfo, trigdata);
  TupleDesc desc = RelationGetDescr(trigdata->tg_relation);
  int nkeys = info->nkeys;
  RawColumn stack_columns[kStackKeys];
  Digits stack_digits[kStackKeys];
  RawColumn *columns = stack_columns;
  Digits *digits = stack_digits;
  if (nkeys > kStackKeys) {
    columns = (RawColumn *)palloc(sizeof(RawColumn) * nkeys);
    digits = (Digits *)palloc(sizeof(Digits) * nkeys);
  }
  for (int i = 0; i < nkeys; i++) {
    KeyColumn &key = info->keys[i];
    RawColumn &c = columns[i];
    c.attnum = key.attnum;
    c.is_pk = key.is_pk;
    c.has_old = old_tuple != nullptr;
    c.has_new = new_tuple != nullptr;
    c.old_value = old_tuple ? key_text(old_tuple, desc, key, digits[i][0], &c.old_len) : nullptr;
    c.new_value = new_tuple ? key_text(new_tuple, desc, key, digits[i][1], &c.new_len) : nullptr;
    if (!old_tuple) c.old_len = 0;
    if (!new_tuple) c.new_len = 0;
  }
  Oid relid = info->relid;
  buffer_event(relid, op, columns, nkeys);
  return PointerGetDatum(nullptr);
}
