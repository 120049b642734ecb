/*
 * plan.hpp: the resolved shape of a value: a table and its associations,
 * nested to any depth.  Pure C++ (no postgres.h), shared by load, sync and
 * watch, and unit-tested without a server.
 *
 * A value made by ectosync.load() is a jsonb object:
 *
 *   {"ectosync": 1,                -- format version
 *    "table": "public.posts",      -- the root table, for people
 *    "relid": 16390,               -- the root table's oid: survives renames
 *    "assocs": {"tags": {}, "comments": {"author": {}}},  -- normalized spec
 *    "filter": {"author_id": 3} | null,  -- values as to_jsonb renders them
 *    "epoch": "5f1c0e7a9b3d2c41",  -- the database's in this generation of shared memory
 *    "seq": 1234,                  -- last event reflected
 *    "tables": [16390, 16402],     -- the oids its assocs led to
 *    ["seal": "<32 hex digits>",]  -- under row level security (value/seal.hpp)
 *    ["unwatched": true,]          -- read under load_unwatched, uncaptured
 *    ["uncommitted": true,]        -- read where its tables were written
 *    "rows": [row, ...]}           -- ordered by primary key, or as the
 *                                     root's "$query" says (query.hpp)
 *
 * and each row is to_jsonb(row) with every loaded association under its
 * name: an array for has_many/many_to_many (ordered by the target's primary
 * key), an object or null for belongs_to/has_one.
 */
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ectosync {

/*
 * How the values of a key column compare and how to_jsonb renders them.
 * The order is the one load() gives rows (its ORDER BY, load.cpp), and the
 * one keys.cpp binary-searches:
 *   Number       int2/4/8, numeric, oid: jsonb numbers, numerically.
 *   Text         text, varchar, uuid: jsonb strings, by their bytes (load
 *                orders them COLLATE "C").
 *   Char         char(n)/bpchar: jsonb strings blank-padded as the type's
 *                output writes them, by those bytes (load orders the output
 *                text, not the cast to text, which strips trailing blanks).
 *   Bool         jsonb true/false: false first.
 *   Date, Timestamp, TimestampTz: jsonb strings in to_jsonb's ISO 8601 form
 *                (timestamptz in UTC, "+00:00"), in time order: -infinity
 *                first, BC years before AD ones, infinity last
 *                (compare_time_texts()).
 * Events carry the same texts (the capture trigger renders bool and time
 * keys as to_jsonb does, capture.cpp).  Paired key columns must be of one
 * kind.  Other types cannot be key columns of a watched table.
 */
enum class KeyKind { Number, Text, Char, Bool, Date, Timestamp, TimestampTz };

/* Whether kind orders as a time (compare_time_texts()). */
inline bool is_time_kind(KeyKind kind) {
  return kind == KeyKind::Date || kind == KeyKind::Timestamp || kind == KeyKind::TimestampTz;
}

/*
 * Order (-1/0/1) of two date/timestamp/timestamptz texts as to_jsonb renders
 * them under TimeZone UTC: "[-]infinity", or "YYYY-MM-DD[THH:MM:SS[.f]]
 * [+00:00][ BC]" with a year of 4 or more digits.  Texts of another shape
 * compare by their bytes, after every well-formed one.
 */
int compare_time_texts(std::string_view a, std::string_view b);

/*
 * Order (-1/0/1) of two char(n) texts: the shorter padded with blanks, as
 * char(n)'s = compares them.  Paired columns may be of other lengths
 * (char(3) referencing char(5): "ab " and "ab   " are one value); within
 * one column this is the order of the padded bytes that load() gives.
 */
int compare_char_texts(std::string_view a, std::string_view b);

/*
 * A key value's text in the one form its type's = makes of every way of
 * writing it: numeric's trailing fractional zeros and char(n)'s trailing
 * blanks go ("2.50" and "2.5", "ab " and "ab   ").  A row read through a
 * foreign key written otherwise than its own key is then cached, found and
 * updated under one key (encode_key()).  Both only cut the text short: the
 * result is a prefix of text (no allocation on the hot paths).
 */
std::string_view canonical_key_text(KeyKind kind, std::string_view text);

struct Column {
  std::string name;   /* attname, unquoted */
  int16_t attnum = 0; /* survives column renames; events carry attnums */
  KeyKind kind = KeyKind::Number;
  std::string type_name; /* format_type(), for messages */
  /* The type's equality operator, qualified, for generated SQL: key types
   * are all pg_catalog's; a filter column's may be any type's. */
  std::string eq_op = "OPERATOR(pg_catalog.=)";
  /* The type schema-qualified (format_type_extended's FORCE_QUALIFY), for
   * casts in generated SQL: no type is looked up through search_path. */
  std::string sql_type;
  /* What a value of another column compared with this one is read as: the
   * base type without its typmod ("pg_catalog.varchar", "pg_catalog.bpchar";
   * int8 for int2 and int4), so that the value is neither cut nor rounded
   * to this column's length and precision, which load()'s joins do not do
   * either. */
  std::string key_sql_type;
};

struct TableInfo {
  uint32_t relid = 0;
  std::string schema, name; /* unquoted */
  std::vector<Column> pk;   /* primary key columns, in index order */
  /* Columns of its foreign keys: watch() captures their old and new
   * values, so that the worker can tell which filtered values (a user's
   * own rows) a change concerns (interest.hpp). */
  std::vector<int16_t> fk_attnums;
  /* Partitioned: its rows are its partitions'.  Else its rows are its
   * own, without those of tables that inherit from it (INHERITS), which
   * its capture triggers do not see. */
  bool partitioned = false;

  /* "schema.name", as shown in notifications and values */
  std::string display() const { return schema + "." + name; }
};

enum class AssocKind { BelongsTo, HasMany, HasOne, ManyToMany };

const char *assoc_kind_name(AssocKind kind); /* "belongs_to", ... */

struct PlanNode;

/*
 * One association from an owner table to a target table.
 *   belongs_to:    owner.owner_cols (a foreign key) = target.target_cols
 *   has_many/one:  owner.owner_cols = target.target_cols (a foreign key)
 *   many_to_many:  owner.owner_cols = join.join_owner_cols and
 *                  join.join_target_cols = target.target_cols
 * owner_cols[i] pairs with target_cols[i] (and with the join columns).
 */
struct Assoc {
  std::string name;
  AssocKind kind = AssocKind::BelongsTo;
  std::vector<Column> owner_cols, target_cols;
  std::optional<TableInfo> join; /* many_to_many only */
  std::vector<Column> join_owner_cols, join_target_cols;
  std::shared_ptr<PlanNode> target; /* target table and its nested assocs */

  bool is_many() const { return kind == AssocKind::HasMany || kind == AssocKind::ManyToMany; }
};

/*
 * A list's query: which rows of the table a list holds and in what order.
 * Given as "$query" in an assocs spec (query.hpp), on the root and on
 * has_many/many_to_many associations.  Every column is of a KeyKind, so
 * that the server's SQL and sync()'s C++ compare values alike: strings
 * bytewise (COLLATE "C"), numbers numerically, times in time order.
 */
enum class CmpOp { Eq, Ne, Lt, Le, Gt, Ge, In, IsNull, NotNull, Or };

/* "=", "<>", ..., "in", "is null", "is not null", "or" */
const char *cmp_op_name(CmpOp op);

struct Condition {
  Column column;
  CmpOp op = CmpOp::Eq;
  /* The compared values as events carry key values (keys.hpp's Texts:
   * a string's text, a number's digits, "true"/"false"), rendered as
   * to_jsonb renders the column's type; several for In, none for the
   * null tests. */
  std::vector<std::string> values;
  /* Or (no column): holds when every condition of one of these holds. */
  std::vector<std::vector<Condition>> any;
};

struct OrderKey {
  Column column;
  bool desc = false;
  bool nulls_first = false; /* SQL's default: NULLS FIRST only with DESC */
};

struct ListQuery {
  std::vector<Condition> where; /* AND */
  std::vector<OrderKey> order;  /* then the primary key, ascending */
  std::optional<int64_t> limit;
  int64_t offset = 0;

  bool ordered() const { return !order.empty(); } /* not by primary key alone */
  bool windowed() const { return limit.has_value() || offset > 0; }
  bool empty() const { return where.empty() && order.empty() && !windowed(); }
};

struct PlanNode {
  TableInfo table;
  std::vector<Assoc> assocs;
  /* The rows of this node that its list holds (root, has_many and
   * many_to_many lists; empty elsewhere). */
  ListQuery query;
};

/* A resolved value shape: what load() builds and sync() patches. */
struct Plan {
  std::shared_ptr<PlanNode> root;
  std::string spec; /* normalized assocs spec, as jsonb text */

  /* Every table whose changes can alter the value (join tables included). */
  std::vector<uint32_t> tables() const;
};

}  // namespace ectosync
