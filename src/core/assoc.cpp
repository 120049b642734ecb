/*
 * assoc.cpp: the assocs spec and its resolution into a Plan (discovery and
 * naming: assoc_discovery.cpp).  Pure C++: see assoc.hpp for the rules.
 */
#include "core/assoc.hpp"
#include "core/query.hpp"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <set>
#include <tuple>

namespace ectosync {

/* Strict-weak "jsonb order" of object keys: shorter first, then bytewise. */
static bool jsonb_key_less(const std::string &a, const std::string &b) {
  if (a.size() != b.size()) return a.size() < b.size();
  return a < b;
}

std::string object_text(std::vector<std::pair<std::string, std::string>> members) {
  std::sort(members.begin(), members.end(),
            [](const auto &a, const auto &b) { return jsonb_key_less(a.first, b.first); });
  std::string out = "{";
  for (size_t i = 0; i < members.size(); ++i) {
    if (i) out += ", ";
    out += json_quote(members[i].first) + ": " + members[i].second;
  }
  return out + "}";
}

Column plan_column(const ColumnDesc &col, KeyKind fallback) {
  Column out;
  out.name = col.name;
  out.attnum = col.attnum;
  out.kind = col.kind.value_or(fallback);
  out.type_name = col.type_name;
  out.eq_op = col.eq_op; /* (empty: the type has none) */
  out.sql_type = col.sql_type;
  out.key_sql_type = col.value_sql_type.empty() ? col.sql_type : col.value_sql_type;
  return out;
}

std::string CatalogSource::render_value(const TableDesc &, const ColumnDesc &, const Json &value) {
  return json_dump(value);
}

Json parse_spec(std::string_view text) {
  try {
    return parse_json(text);
  } catch (const JsonError &e) {
    throw AssocError(kInvalidJson, std::string("invalid assocs JSON: ") + e.what(),
                     "At character " + std::to_string(e.character) + ".");
  }
}

namespace {

/* "schema.name" of a table, for messages. */
std::string display(const TableDesc &table) {
  return table.schema + "." + table.name;
}

/* A JSON array of strings, as jsonb prints it. */
std::string string_array_text(const std::vector<std::string> &items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + json_quote(items[i]);
  return out + "]";
}

}  // namespace

/* ==== specs ==== */

namespace {

constexpr const char *kKinds[] = {"belongs_to", "has_many", "has_one", "many_to_many"};

/* The kind key of a definition object, or nullptr when it is a nested spec. */
const char *definition_kind(const Json &value) {
  if (value.type != Json::Type::Object) return nullptr;
  for (const char *kind : kKinds) {
    const Json *v = value.find(kind);
    if (v && v->type == Json::Type::String) return kind;
  }
  return nullptr;
}

/* The kind of a definition key (one of kKinds). */
AssocKind kind_from_name(std::string_view name) {
  if (name == "belongs_to") return AssocKind::BelongsTo;
  if (name == "has_many") return AssocKind::HasMany;
  if (name == "has_one") return AssocKind::HasOne;
  return AssocKind::ManyToMany;
}

/* Where each name of one spec level came from (several places merge). */
using SpecParts = std::map<std::string, std::vector<const Json *>>;

void collect_parts(const Json &spec, SpecParts &parts, bool in_array);

/* An object level: each member is a name and its nested spec (or a definition). */
void collect_object(const Json &spec, SpecParts &parts) {
  for (const auto &member : spec.members) parts[member.first].push_back(&member.second);
}

/* Gathers the names of one level of a spec and their nested specs. */
void collect_parts(const Json &spec, SpecParts &parts, bool in_array) {
  switch (spec.type) {
    case Json::Type::Null:
      return;
    case Json::Type::String:
      parts[spec.text];
      return;
    case Json::Type::Object:
      collect_object(spec, parts);
      return;
    case Json::Type::Array:
      if (!in_array) {
        for (const auto &item : spec.items) collect_parts(item, parts, true);
        return;
      }
      break;
    case Json::Type::Bool:
      if (spec.boolean && !in_array) return;
      break;
    default:
      break;
  }
  throw AssocError(kInvalidParameter, "invalid assocs spec: unexpected JSON value",
                   "An assocs spec is a name, an array of names and objects, or an object "
                   "mapping names to nested specs.",
                   "Example: [\"tags\", {\"comments\": [\"author\"]}]");
}

/* Builds a Column of table from an attnum; refuses types that cannot be keys. */
Column key_column(const TableDesc &table, int16_t attnum) {
  const ColumnDesc *col = table.column(attnum);
  if (!col)
    throw AssocError(kUndefinedObject, "column number " + std::to_string(attnum) + " of table " +
                                           display(table) + " does not exist");
  if (!col->kind)
    throw AssocError(kFeatureNotSupported,
                     "column \"" + col->name + "\" of table " + display(table) + " has type " +
                         col->type_name + ", which ecto_sync cannot use as a key",
                     "Row key and association key columns must be of a type whose values "
                     "events can carry as to_jsonb renders them.",
                     "Use smallint, integer, bigint, numeric, oid, text, varchar, char, uuid, "
                     "boolean, date, timestamp or timestamptz key columns.");
  /* Keys are compared as events render them, byte for byte: a collation
   * that finds "Alice" equal to "alice" would make one row two keys, and
   * the cache would keep the one the next change does not refresh. */
  if (!col->equal_as_rendered)
    throw AssocError(kFeatureNotSupported,
                     "column \"" + col->name + "\" of table " + display(table) +
                         " has a nondeterministic collation, which ecto_sync cannot use in a key",
                     "Row key and association key columns are compared as their values render.",
                     "Give the column a deterministic collation.");
  /* char(n) pads each value to n, so that padding compares as PostgreSQL
   * does; bpchar without a length would not be padded alike. */
  if (col->bare_bpchar)
    throw AssocError(kFeatureNotSupported,
                     "column \"" + col->name + "\" of table " + display(table) +
                         " has type bpchar without a length, which ecto_sync cannot use as a key",
                     "", "Use char(n), varchar or text key columns.");
  return plan_column(*col);
}

/* key_column() for each attnum, in order. */
std::vector<Column> key_columns(const TableDesc &table, const std::vector<int16_t> &attnums) {
  std::vector<Column> out;
  for (int16_t attnum : attnums) out.push_back(key_column(table, attnum));
  return out;
}

/* A table of a plan: it must have a primary key of supported types. */
TableInfo table_info(const TableDesc &table) {
  /* A partition's rows are its partitioned table's: the capture trigger
   * that watch() puts on the partitioned table is cloned to every
   * partition, and reports their rows under the partitioned table. */
  if (table.partition)
    throw AssocError(kFeatureNotSupported,
                     "table " + display(table) + " is a partition, which ecto_sync cannot watch",
                     "Its rows are captured, loaded and synced as rows of its partitioned table.",
                     "Use the partitioned table.");
  if (table.pk.empty())
    throw AssocError(kFeatureNotSupported, "table " + display(table) + " has no primary key",
                     "ecto_sync identifies rows by their primary key, or else by their "
                     "REPLICA IDENTITY index or a unique index on NOT NULL columns; none of "
                     "them deferrable (two rows may have one key until the commit).",
                     "Add a primary key or a unique NOT NULL key to " + display(table) + ".");
  TableInfo info;
  info.relid = table.relid;
  info.partitioned = table.partitioned;
  info.schema = table.schema;
  info.name = table.name;
  info.pk = key_columns(table, table.pk);
  return info;
}

/* The definition's option `key` as a list of column names (or nullopt). */
std::optional<std::vector<std::string>> name_list(const Json &def, const char *key,
                                                  const std::string &assoc) {
  const Json *value = def.find(key);
  if (!value) return std::nullopt;
  std::vector<std::string> names;
  if (value->type == Json::Type::String) names.push_back(value->text);
  if (value->type == Json::Type::Array)
    for (const auto &item : value->items) {
      if (item.type != Json::Type::String) names.clear();
      if (item.type != Json::Type::String) break;
      names.push_back(item.text);
    }
  if (names.empty())
    throw AssocError(kInvalidParameter,
                     "option \"" + std::string(key) + "\" of association \"" + assoc +
                         "\" must be a column name or a non-empty array of column names");
  return names;
}

/* attnums of named columns of table; errors name the column and the association. */
std::vector<int16_t> attnums_of(const TableDesc &table, const std::vector<std::string> &names,
                                const std::string &assoc) {
  std::vector<int16_t> out;
  for (const auto &name : names) {
    const ColumnDesc *col = table.column(name);
    if (!col)
      throw AssocError("42703",
                       "column \"" + name + "\" of table " + display(table) + " does not exist",
                       "Named in the definition of association \"" + assoc + "\".");
    out.push_back(col->attnum);
  }
  return out;
}

/* Columns named by option key of table, or the table's primary key. */
std::vector<int16_t> columns_or_pk(const Json &def, const char *key, const TableDesc &table,
                                   const std::string &assoc, bool required) {
  auto names = name_list(def, key, assoc);
  if (names) return attnums_of(table, *names, assoc);
  if (required)
    throw AssocError(kInvalidParameter, "the definition of association \"" + assoc +
                                            "\" needs option \"" + key + "\"");
  if (table.pk.empty())
    throw AssocError(kFeatureNotSupported, "table " + display(table) + " has no primary key",
                     "Association \"" + assoc + "\" references it without option \"" + key + "\".");
  return table.pk;
}

/* Looks a definition's table name up. */
const TableDesc &named_table(CatalogSource &catalog, const std::string &name,
                             const std::string &assoc) {
  auto relid = catalog.find_table(name);
  if (!relid)
    throw AssocError(kUndefinedTable, "table \"" + name + "\" does not exist",
                     "Named in the definition of association \"" + assoc + "\".");
  return catalog.table(*relid);
}

/* Refuses options that the kind does not know. */
void check_options(const Json &def, const char *kind, const std::string &assoc) {
  bool m2m = std::string_view(kind) == "many_to_many";
  std::vector<std::string> known = {kind, "assocs", "references"};
  if (m2m)
    known.insert(known.end(), {"through", "owner_columns", "target_columns", "target_references"});
  else
    known.push_back("columns");
  for (const auto &member : def.members) {
    if (std::find(known.begin(), known.end(), member.first) != known.end()) continue;
    std::string list;
    for (const auto &k : known) list += (list.empty() ? "" : ", ") + k;
    throw AssocError(kInvalidParameter,
                     "unknown option \"" + member.first + "\" in the definition of association \"" +
                         assoc + "\"",
                     {}, "A " + std::string(kind) + " definition takes: " + list + ".");
  }
}

/*
 * A many_to_many's target_references must pick one target row per join
 * row: they hold a unique key of the target (load() links every row a join
 * row names, and a patch the one it finds).
 */
void check_unique(const TableDesc &table, const std::vector<int16_t> &cols,
                  const std::string &assoc) {
  for (const std::vector<int16_t> &unique : table.uniques)
    if (!unique.empty() && std::all_of(unique.begin(), unique.end(), [&](int16_t attnum) {
          return std::find(cols.begin(), cols.end(), attnum) != cols.end();
        }))
      return;
  throw AssocError(kInvalidParameter,
                   "option \"target_references\" of association \"" + assoc +
                       "\" does not name a unique key of " + display(table),
                   "A join row links one row of the target: columns that several rows share "
                   "would link all of them.",
                   "Name the columns of a primary key or unique index of " + display(table) + ".");
}

/* Paired key columns must be as many and of the same kind. */
void check_pairs(const TableDesc &a, const std::vector<int16_t> &a_cols, const TableDesc &b,
                 const std::vector<int16_t> &b_cols, const std::string &assoc) {
  if (a_cols.size() != b_cols.size())
    throw AssocError(kInvalidParameter, "association \"" + assoc + "\" pairs " +
                                            std::to_string(a_cols.size()) + " column(s) of " +
                                            display(a) + " with " + std::to_string(b_cols.size()) +
                                            " of " + display(b));
  for (size_t i = 0; i < a_cols.size(); ++i) {
    Column ca = key_column(a, a_cols[i]), cb = key_column(b, b_cols[i]);
    if (ca.kind != cb.kind)
      throw AssocError(kInvalidParameter,
                       "association \"" + assoc + "\" pairs column \"" + ca.name + "\" of " +
                           display(a) + " with column \"" + cb.name + "\" of " + display(b) +
                           ", which renders differently in jsonb",
                       "Paired key columns must be of one kind: numbers, text (text, varchar, "
                       "uuid), char(n), booleans, dates, timestamps or timestamptz.");
  }
}

/* An explicit definition (see assoc.hpp), resolved to attnums. */
AssocDesc define(CatalogSource &catalog, const TableDesc &owner, const std::string &assoc,
                 const Json &def, const char *kind) {
  check_options(def, kind, assoc);
  if (owner.column(assoc))
    throw AssocError(kInvalidParameter,
                     "association name \"" + assoc + "\" is a column of table " + display(owner),
                     "A row's associations are stored beside its columns.",
                     "Choose another name for the association.");
  AssocDesc d;
  d.name = assoc;
  d.kind = kind_from_name(kind);
  const TableDesc &target = named_table(catalog, def.find(kind)->text, assoc);
  d.target = target.relid;
  if (d.kind == AssocKind::BelongsTo) {
    d.owner_cols = columns_or_pk(def, "columns", owner, assoc, true);
    d.target_cols = columns_or_pk(def, "references", target, assoc, false);
  } else if (d.kind != AssocKind::ManyToMany) {
    d.target_cols = columns_or_pk(def, "columns", target, assoc, true);
    d.owner_cols = columns_or_pk(def, "references", owner, assoc, false);
  } else {
    const Json *through = def.find("through");
    if (!through || through->type != Json::Type::String)
      throw AssocError(kInvalidParameter, "the definition of association \"" + assoc +
                                              "\" needs option \"through\" (a table name)");
    const TableDesc &join = named_table(catalog, through->text, assoc);
    d.join = join.relid;
    d.join_owner_cols = columns_or_pk(def, "owner_columns", join, assoc, true);
    d.join_target_cols = columns_or_pk(def, "target_columns", join, assoc, true);
    d.owner_cols = columns_or_pk(def, "references", owner, assoc, false);
    d.target_cols = columns_or_pk(def, "target_references", target, assoc, false);
    check_unique(target, d.target_cols, assoc);
  }
  return d; /* (its pairs are checked as any association's: make_assoc()) */
}

/* Column names of attnums, as a JSON array text. */
std::string names_text(const TableDesc &table, const std::vector<int16_t> &attnums) {
  std::vector<std::string> names;
  for (int16_t attnum : attnums) names.push_back(table.column(attnum)->name);
  return string_array_text(names);
}

/* The normalized text of a definition, every default filled in. */
std::string definition_text(CatalogSource &catalog, const TableDesc &owner, const AssocDesc &d,
                            const std::string &nested_text) {
  const TableDesc &target = catalog.table(d.target);
  std::vector<std::pair<std::string, std::string>> m = {
      {assoc_kind_name(d.kind), json_quote(target.sql_name)}, {"assocs", nested_text}};
  if (d.kind == AssocKind::BelongsTo) {
    m.emplace_back("columns", names_text(owner, d.owner_cols));
    m.emplace_back("references", names_text(target, d.target_cols));
  } else if (d.kind != AssocKind::ManyToMany) {
    m.emplace_back("columns", names_text(target, d.target_cols));
    m.emplace_back("references", names_text(owner, d.owner_cols));
  } else {
    const TableDesc &join = catalog.table(d.join);
    m.emplace_back("through", json_quote(join.sql_name));
    m.emplace_back("owner_columns", names_text(join, d.join_owner_cols));
    m.emplace_back("target_columns", names_text(join, d.join_target_cols));
    m.emplace_back("references", names_text(owner, d.owner_cols));
    m.emplace_back("target_references", names_text(target, d.target_cols));
  }
  return object_text(std::move(m));
}

/* One level of a spec, resolved: the plan node and the normalized text. */
struct Resolved {
  std::shared_ptr<PlanNode> node;
  std::string text;
};

Resolved resolve_node(CatalogSource &catalog, uint32_t relid,
                      const std::vector<const Json *> &specs);

/* The association `name` of owner: defined in parts, or discovered. */
AssocDesc find_assoc(CatalogSource &catalog, const TableDesc &owner, const std::string &name,
                     const std::vector<const Json *> &parts, std::vector<const Json *> &nested) {
  const Json *definition = nullptr;
  for (const Json *part : parts) {
    if (definition_kind(*part)) {
      if (definition)
        throw AssocError(kInvalidParameter, "association \"" + name + "\" is defined twice");
      definition = part;
      if (const Json *inner = part->find("assocs")) nested.push_back(inner);
    } else {
      nested.push_back(part);
    }
  }
  if (definition) return define(catalog, owner, name, *definition, definition_kind(*definition));
  std::vector<AssocDesc> found = discover(catalog, owner.relid);
  for (auto &d : found)
    if (d.name == name) return d;
  std::string names;
  for (const auto &d : found) names += (names.empty() ? "" : ", ") + d.name;
  throw AssocError(
      kUndefinedObject, "table " + display(owner) + " has no association \"" + name + "\"",
      found.empty() ? "It has no foreign keys from or to other tables."
                    : "Its associations: " + names + ".",
      "See ectosync.associations('" + owner.sql_name + "'), or define the association explicitly.");
}

/* The plan's association for d, with its target resolved from the nested specs. */
Assoc make_assoc(CatalogSource &catalog, const TableDesc &owner, const AssocDesc &d,
                 const std::vector<const Json *> &nested, std::string &text) {
  const TableDesc &target = catalog.table(d.target);
  Assoc a;
  a.name = d.name;
  a.kind = d.kind;
  /* (a definition's pairs, and a foreign key's: PostgreSQL pairs varchar
   * with char(n), and a timestamp with a timestamptz, values that render
   * differently in jsonb) */
  if (d.kind != AssocKind::ManyToMany)
    check_pairs(owner, d.owner_cols, target, d.target_cols, d.name);
  a.owner_cols = key_columns(owner, d.owner_cols);
  a.target_cols = key_columns(target, d.target_cols);
  if (d.kind == AssocKind::ManyToMany) {
    const TableDesc &join = catalog.table(d.join);
    check_pairs(owner, d.owner_cols, join, d.join_owner_cols, d.name);
    check_pairs(target, d.target_cols, join, d.join_target_cols, d.name);
    a.join = table_info(join);
    a.join_owner_cols = key_columns(join, d.join_owner_cols);
    a.join_target_cols = key_columns(join, d.join_target_cols);
  }
  Resolved inner = resolve_node(catalog, d.target, nested);
  if (!a.is_many() && !inner.node->query.empty())
    throw AssocError(kInvalidParameter,
                     "association \"" + d.name + "\" of table " + display(owner) + " is " +
                         assoc_kind_name(d.kind) + ": it cannot take a $query",
                     "A $query selects and orders the rows of a list: the root's, or a has_many "
                     "or many_to_many association's.");
  a.target = inner.node;
  text = inner.text;
  return a;
}

/* One level: the specs given for it (several when a name is repeated) merge. */
Resolved resolve_node(CatalogSource &catalog, uint32_t relid,
                      const std::vector<const Json *> &specs) {
  const TableDesc &owner = catalog.table(relid);
  SpecParts parts;
  for (const Json *spec : specs) collect_parts(*spec, parts, false);
  Resolved out;
  out.node = std::make_shared<PlanNode>();
  out.node->table = table_info(owner);
  for (const ForeignKey &fk : catalog.foreign_keys_from(relid))
    for (int16_t attnum : fk.from_cols)
      if (std::find(out.node->table.fk_attnums.begin(), out.node->table.fk_attnums.end(), attnum) ==
          out.node->table.fk_attnums.end())
        out.node->table.fk_attnums.push_back(attnum);
  std::sort(out.node->table.fk_attnums.begin(), out.node->table.fk_attnums.end());
  std::vector<std::pair<std::string, std::string>> members;
  for (const auto &[name, values] : parts) {
    if (!name.empty() && name[0] == '$') {
      if (name != "$query")
        throw AssocError(
            kInvalidParameter,
            "unknown option \"" + name + "\" in the assocs spec of table " + display(owner),
            "Names that begin with $ are options; the one option is $query.");
      if (values.size() > 1)
        throw AssocError(kInvalidParameter, "$query is given twice for table " + display(owner));
      members.emplace_back(name, parse_query(catalog, owner, *values[0], out.node->query));
      continue;
    }
    std::vector<const Json *> nested;
    AssocDesc d = find_assoc(catalog, owner, name, values, nested);
    d.name = name;
    std::string nested_text;
    out.node->assocs.push_back(make_assoc(catalog, owner, d, nested, nested_text));
    bool defined = std::any_of(values.begin(), values.end(),
                               [](const Json *v) { return definition_kind(*v) != nullptr; });
    members.emplace_back(name,
                         defined ? definition_text(catalog, owner, d, nested_text) : nested_text);
  }
  out.text = object_text(std::move(members));
  return out;
}

}  // namespace

Plan resolve(CatalogSource &catalog, uint32_t relid, const Json &spec) {
  Resolved r = resolve_node(catalog, relid, {&spec});
  Plan plan;
  plan.root = r.node;
  plan.spec = r.text;
  return plan;
}

std::string normalize(CatalogSource &catalog, uint32_t relid, const Json &spec) {
  return resolve(catalog, relid, spec).spec;
}

}  // namespace ectosync
