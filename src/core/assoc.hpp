/*
 * assoc.hpp: association discovery, naming and the assocs spec.  Pure C++
 * (no postgres.h): catalog.cpp feeds it plain descriptions of tables and
 * foreign keys through the CatalogSource interface, unit tests feed it maps.
 *
 * DISCOVERY.  The associations of a table O come from foreign keys:
 *
 *   belongs_to    a foreign key on O (O.cols -> T.cols).
 *   has_many      a foreign key on another table T referencing O.
 *   has_one       the same, when T's referencing columns are unique (some
 *                 unique index or the primary key of T is made of a subset
 *                 of them).
 *   many_to_many  a join table J with exactly two foreign keys, one
 *                 referencing O and one referencing T, and a unique index
 *                 (or primary key) whose columns are exactly the union of
 *                 both foreign keys' columns.  A join table yields
 *                 many_to_many associations only, not has_many/has_one ones
 *                 (its rows are not objects of their own).  A join table
 *                 whose two keys reference the same table yields two
 *                 associations on it, one per direction.
 *
 * NAMES.  Each association gets a base name:
 *
 *   belongs_to    a single column ending in "_id" (and longer than that):
 *                 the column name without "_id" (author_id -> author);
 *                 otherwise the singular of the target table's name.
 *   has_many      the referencing table's name (comments).
 *   has_one       the singular of the referencing table's name (profile).
 *   many_to_many  the target table's name (tags).
 *
 * The singular of a name: "...ies" -> "...y", "...sses" -> "...ss",
 * "...s" (not "...ss") -> drop the "s"; anything else is left as it is.
 *
 * When a name is taken by more than one association of the table, or is a
 * column of the table, every association involved moves to its next name:
 *
 *   1.  <base>_by_<columns>   the columns, joined by "_", that tell the
 *       associations apart: the foreign key's columns (on O for
 *       belongs_to, on T for has_many/has_one, on J's target side for
 *       many_to_many): comments_by_author_id, comments_by_editor_id.
 *   2.  belongs_to/has_many/has_one: <base>_by_<constraint name>;
 *       many_to_many: <base>_through_<join table>_by_<columns>.
 *   3.  the level-2 name followed by "_2", "_3", ... in the order of
 *       (target schema, target name, constraint name), the first keeping
 *       the level-2 name (unless it is a column).
 *
 * This repeats until no name collides; discovery orders the associations by
 * name.  Names only depend on the catalog, never on the order of queries.
 *
 * SPEC.  ectosync.watch()/load() take assocs as JSON:
 *
 *   ["tags", {"comments": ["author"]}]     names, nested to any depth
 *   {"tags": {}, "comments": {"author": {}}}   the same, as an object
 *   "tags"                                 a single name
 *   {"$query": {...}, "comments": {"$query": {...}}}   which rows, in what
 *                      order: of the root, or of a has_many/many_to_many
 *                      list (query.hpp); names beginning with $ are options
 *
 * An array holds names (strings) and objects; an object maps a name to its
 * nested spec (an array, an object, a name, or null/true for none).  An
 * object whose values include a string under one of the keys belongs_to,
 * has_many, has_one, many_to_many is an explicit definition instead, for
 * associations that discovery cannot find or name as wanted:
 *
 *   {"writer": {"belongs_to": "persons", "columns": ["author_id"]}}
 *   {"notes":  {"has_many": "audit.entries", "columns": ["post_id"],
 *               "assocs": [...]}}
 *   {"marks":  {"many_to_many": "labels", "through": "posts_labels",
 *               "owner_columns": ["post_id"], "target_columns": ["label_id"]}}
 *
 *   belongs_to: "columns" are the owner's columns; "references" the target's
 *   (default: its primary key).  has_many/has_one: "columns" are the
 *   target's columns; "references" the owner's (default: its primary key).
 *   many_to_many: "through" the join table, "owner_columns"/"target_columns"
 *   its columns pairing with "references" (owner, default primary key) and
 *   "target_references" (target, default primary key).  "assocs" nests.
 *   Table names are read like a regclass literal (search_path applies;
 *   quote with "" as in SQL).  No foreign key is needed, but paired columns
 *   must be of the same key kind.  A definition's name must not be a column
 *   of the owner; it may be a discovered name, which it then replaces.
 *
 * The normalized spec (stored in values and watches, compared as text) is an
 * object with keys in jsonb's order, definitions rewritten in full with
 * schema-qualified table names and every default filled in.  Renaming a
 * table, or a column that an association's name derives from, changes the
 * names: values and watches made before keep their triggers (oids, attnums)
 * but must be re-watched/re-loaded by their new spec.
 */
#pragma once

#include "core/json.hpp"

#include "core/plan.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ectosync {

/* ---- errors ---- */

/*
 * An error of the pure layer: a SQLSTATE (5 characters), the texts of an
 * ereport.  catalog.cpp turns it into an Error (pg_boundary.hpp).
 */
class AssocError : public std::runtime_error {
 public:
  AssocError(std::string sqlstate, std::string message, std::string detail = {},
             std::string hint = {})
      : std::runtime_error(message),
        sqlstate(std::move(sqlstate)),
        message(std::move(message)),
        detail(std::move(detail)),
        hint(std::move(hint)) {}
  std::string sqlstate, message, detail, hint;
};

/* SQLSTATEs used here */
inline constexpr const char *kUndefinedTable = "42P01";
inline constexpr const char *kUndefinedObject = "42704";
inline constexpr const char *kInvalidParameter = "22023";
inline constexpr const char *kFeatureNotSupported = "0A000";
inline constexpr const char *kInvalidJson = "22032"; /* invalid_json_text */

/* An object's text, as jsonb prints it, from keys and value texts. */
std::string object_text(std::vector<std::pair<std::string, std::string>> members);

/* parse_json(), its errors as AssocError 22032 ("invalid assocs JSON: ..."). */
Json parse_spec(std::string_view text);

/* ---- descriptions of the catalog ---- */

struct ColumnDesc;
/* The plan's Column of a catalog column; fallback when it is of no key kind. */
Column plan_column(const ColumnDesc &col, KeyKind fallback = KeyKind::Text);

struct ColumnDesc {
  std::string name;
  int16_t attnum = 0;
  std::string type_name;                        /* format_type() */
  std::optional<KeyKind> kind;                  /* nullopt: cannot be a key column */
  std::string eq_op = "OPERATOR(pg_catalog.=)"; /* qualified; empty: the type has none */
  std::string sql_type;                         /* schema-qualified, for generated SQL */
  /* its base type without its typmod (numeric, not numeric(6,2), nor a
   * domain over it; int8 for int2 and int4): what $query values and other
   * columns' values are read as, so that they are neither rounded, cut nor
   * out of range (Column::key_sql_type, catalog.cpp's value_type_name()) */
  std::string value_sql_type;
  /* Its values are equal exactly when to_jsonb renders them alike (a key
   * kind, an enum or bytea; text of a deterministic collation): what a
   * filter needs, which patches compare as rendered. */
  bool equal_as_rendered = true;
  bool bare_bpchar = false; /* bpchar without a length (a domain's too): not padded */
  /* Its SQL NULL is exactly what to_jsonb renders as null: not json or
   * jsonb ('null' is no SQL NULL), nor a composite (ROW(NULL) IS NULL). */
  bool null_as_rendered = true;
  /* A date or time type (by its base type): "now" or "today" reads as
   * another value at another time. */
  bool moving_time = false;
};

struct TableDesc {
  uint32_t relid = 0;
  std::string schema, name;
  std::string sql_name;                      /* quoted "schema"."name", for specs */
  bool partitioned = false;                  /* relkind 'p': captured through its partitions */
  bool partition = false;                    /* a partition: discovered through, never in a plan */
  std::vector<ColumnDesc> columns;           /* live columns, by attnum */
  std::vector<int16_t> pk;                   /* row key attnums (catalog.cpp; empty: none) */
  std::vector<std::vector<int16_t>> uniques; /* unique indexes, pk included */

  const ColumnDesc *column(int16_t attnum) const;
  const ColumnDesc *column(std::string_view name) const;
};

struct ForeignKey {
  std::string name; /* constraint name */
  uint32_t from_relid = 0;
  std::vector<int16_t> from_cols;
  uint32_t to_relid = 0;
  std::vector<int16_t> to_cols;
};

/*
 * What the pure layer asks of the catalog.  Implementations may throw
 * AssocError (or anything else: it passes through).
 */
class CatalogSource {
 public:
  virtual ~CatalogSource() = default;
  /* The table; throws when there is no such table. */
  virtual const TableDesc &table(uint32_t relid) = 0;
  /* A table by name, as a regclass literal; nullopt when unknown. */
  virtual std::optional<uint32_t> find_table(const std::string &name) = 0;
  /* Foreign keys on relid / referencing relid. */
  virtual std::vector<ForeignKey> foreign_keys_from(uint32_t relid) = 0;
  virtual std::vector<ForeignKey> foreign_keys_to(uint32_t relid) = 0;
  /* A $query value for a column, as to_jsonb renders the column's type
   * (JSON text); throws AssocError when it is not one.  The default
   * (for tests without a server) keeps the value as given. */
  virtual std::string render_value(const TableDesc &table, const ColumnDesc &column,
                                   const Json &value);
};

/* ---- discovery ---- */

/* A discovered (or explicitly defined) association, by attnums. */
struct AssocDesc {
  std::string name;
  AssocKind kind = AssocKind::BelongsTo;
  uint32_t target = 0;
  std::vector<int16_t> owner_cols, target_cols;
  uint32_t join = 0; /* many_to_many only */
  std::vector<int16_t> join_owner_cols, join_target_cols;
  std::string constraint; /* the foreign key that names it (target side for m2m) */
};

/* Every association of relid, named and ordered by name. */
std::vector<AssocDesc> discover(CatalogSource &catalog, uint32_t relid);

/* The singular of a table name (see NAMES above). */
std::string singular(const std::string &name);

/* ---- specs ---- */

/* A normalized spec: association name -> its definition (if explicit) and nested spec. */
struct SpecNode;
struct SpecEntry {
  std::optional<AssocDesc> definition; /* attnums resolved; name unset */
  std::shared_ptr<SpecNode> nested;
};
struct SpecNode {
  std::map<std::string, SpecEntry> entries;
};

/*
 * Resolves a spec (parsed JSON) against the catalog, starting at relid:
 * every name must be an association of its owner (discovered or defined).
 * Throws AssocError naming the unknown association, table, column or option.
 */
Plan resolve(CatalogSource &catalog, uint32_t relid, const Json &spec);

/* The normalized text of a spec alone (resolve() puts it in Plan::spec too). */
std::string normalize(CatalogSource &catalog, uint32_t relid, const Json &spec);

}  // namespace ectosync
