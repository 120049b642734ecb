/*
 * query.cpp: a list's "$query" (see query.hpp for the form it takes).
 */
#include "core/query.hpp"

#include <algorithm>
#include <cstdlib>

namespace ectosync {

namespace {

constexpr const char *kUndefinedColumn = "42703";

const char *kHint =
    "A $query is {\"where\": ..., \"order_by\": ..., \"limit\": n, \"offset\": n}; "
    "see the README's \"Queries\" section.";

[[noreturn]] void invalid(const std::string &message, const std::string &detail = {}) {
  throw AssocError(kInvalidParameter, message, detail, kHint);
}

std::string display(const TableDesc &table) {
  return table.schema + "." + table.name;
}

/* The column `name` of table, of a kind that can be compared (query.hpp). */
Column query_column(const TableDesc &table, const Json &name, const char *where) {
  if (name.type != Json::Type::String)
    invalid(std::string("invalid $query: a column name in ") + where + " must be a string");
  const ColumnDesc *col = table.column(name.text);
  if (!col)
    throw AssocError(kUndefinedColumn, "column \"" + name.text + "\" of table " + display(table) +
                                           " does not exist (in $query " + where + ")");
  if (!col->kind)
    throw AssocError(kFeatureNotSupported,
                     "column \"" + col->name + "\" of table " + display(table) + " is of type " +
                         col->type_name + ", which $query " + where + " cannot compare",
                     "sync() compares values exactly as the server does only for numbers, "
                     "strings (bytewise), booleans, dates and timestamps.",
                     "Use a column of type smallint, integer, bigint, numeric, oid, text, "
                     "varchar, char, uuid, boolean, date, timestamp or timestamptz.");
  if (col->bare_bpchar)
    throw AssocError(kFeatureNotSupported,
                     "column \"" + col->name + "\" of table " + display(table) +
                         " has type bpchar without a length, which $query " + where +
                         " cannot compare",
                     "The server compares bpchar ignoring trailing blanks, and sync() its values "
                     "as they render, with them: they could disagree.",
                     "Use a char(n), varchar or text column.");
  Column out = plan_column(*col);
  /* Values are read as the type without its typmod, so that 1.005 is not
   * rounded for a numeric(6,2) column, nor 'abcdef' cut for a varchar(3);
   * char(n) keeps its length, whose blank padding is how its values
   * render and compare (plan.hpp's KeyKind::Char). */
  out.sql_type = col->kind == KeyKind::Char || col->value_sql_type.empty() ? col->sql_type
                                                                           : col->value_sql_type;
  return out;
}

/* A JSON value's text as events carry it (Condition::values). */
std::string value_text(const Json &v) {
  switch (v.type) {
    case Json::Type::Bool:
      return v.boolean ? "true" : "false";
    case Json::Type::String:
    case Json::Type::Number:
      return v.text;
    default:
      return json_dump(v);
  }
}

/* One compared value: rendered as to_jsonb renders the column's type. */
void add_value(CatalogSource &catalog, const TableDesc &table, const Column &col, const Json &v,
               Condition &c, std::vector<std::string> &texts) {
  if (v.type == Json::Type::Null || v.type == Json::Type::Array || v.type == Json::Type::Object)
    invalid("invalid $query value for column \"" + col.name + "\" of table " + display(table),
            v.type == Json::Type::Null ? "Compare with null through \"is null\"."
                                       : "A compared value must be a string, number or boolean.");
  ColumnDesc desc = *table.column(col.attnum);
  desc.sql_type = col.sql_type;
  std::string rendered = catalog.render_value(table, desc, v);
  Json parsed = parse_json(rendered);
  c.values.push_back(value_text(parsed));
  texts.push_back(rendered);
}

CmpOp parse_op(const std::string &op) {
  static const std::pair<const char *, CmpOp> ops[] = {
      {"=", CmpOp::Eq},           {"<>", CmpOp::Ne},
      {"!=", CmpOp::Ne},          {"<", CmpOp::Lt},
      {"<=", CmpOp::Le},          {">", CmpOp::Gt},
      {">=", CmpOp::Ge},          {"in", CmpOp::In},
      {"is null", CmpOp::IsNull}, {"is not null", CmpOp::NotNull}};
  std::string lower = op;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char ch) { return std::tolower(ch); });
  for (const auto &[name, value] : ops)
    if (lower == name) return value;
  invalid("invalid $query operator \"" + op + "\"",
          "Operators: =, <>, !=, <, <=, >, >=, in, is null, is not null.");
}

std::string parse_where(CatalogSource &catalog, const TableDesc &table, const Json &where,
                        std::vector<Condition> &conditions, int depth = 0);

/* How deep "or" may nest: deep enough for any screen's list, and the
 * parser's recursion stays small. */
constexpr int kMaxOrDepth = 8;

/* {"or": [where, ...]}: one of the wheres holds; appended to out and to
 * texts (normalized). */
void parse_or(CatalogSource &catalog, const TableDesc &table, const Json &item,
              std::vector<Condition> &out, std::vector<std::string> &texts, int depth) {
  const Json *alternatives =
      item.members.size() == 1 && item.members[0].first == "or" ? &item.members[0].second : nullptr;
  if (!alternatives || alternatives->type != Json::Type::Array || alternatives->items.empty())
    invalid("invalid $query where condition: " + json_dump(item),
            "An object condition is {\"or\": [where, ...]}: one or more wheres, one of which "
            "must hold.");
  if (depth >= kMaxOrDepth)
    invalid("invalid $query where: \"or\" nests more than " + std::to_string(kMaxOrDepth) + " deep",
            "An or's wheres may hold ors of their own, to that depth.");
  Condition c;
  c.op = CmpOp::Or;
  std::string text = "{\"or\": [";
  for (const Json &where : alternatives->items) {
    c.any.emplace_back();
    text += (c.any.size() > 1 ? ", " : "") +
            parse_where(catalog, table, where, c.any.back(), depth + 1);
  }
  texts.push_back(text + "]}");
  out.push_back(std::move(c));
}

/* One condition ["col", op, value?] or {"or": ...}, appended to out and to
 * texts (normalized). */
void parse_condition(CatalogSource &catalog, const TableDesc &table, const Json &item,
                     std::vector<Condition> &out, std::vector<std::string> &texts, int depth) {
  if (item.type == Json::Type::Object) return parse_or(catalog, table, item, out, texts, depth);
  if (item.type != Json::Type::Array || item.items.size() < 2 || item.items.size() > 3 ||
      item.items[1].type != Json::Type::String)
    invalid("invalid $query where condition: " + json_dump(item),
            "A condition is [\"column\", \"operator\", value], [\"column\", \"is null\"], "
            "or {\"or\": [where, ...]}.");
  Condition c;
  c.column = query_column(table, item.items[0], "where");
  c.op = parse_op(item.items[1].text);
  bool null_test = c.op == CmpOp::IsNull || c.op == CmpOp::NotNull;
  if (null_test != (item.items.size() == 2))
    invalid("invalid $query where condition: " + json_dump(item),
            null_test ? "\"is null\" and \"is not null\" take no value."
                      : "The operator needs a value.");
  std::vector<std::string> rendered;
  if (c.op == CmpOp::In) {
    if (item.items[2].type != Json::Type::Array)
      invalid("invalid $query where condition: " + json_dump(item),
              "\"in\" takes an array of values.");
    for (const Json &v : item.items[2].items) add_value(catalog, table, c.column, v, c, rendered);
  } else if (!null_test) {
    add_value(catalog, table, c.column, item.items[2], c, rendered);
  }
  std::string text = "[" + json_quote(c.column.name) + ", " + json_quote(cmp_op_name(c.op));
  if (c.op == CmpOp::In) {
    text += ", [";
    for (size_t i = 0; i < rendered.size(); i++) text += (i ? ", " : "") + rendered[i];
    text += "]";
  } else if (!null_test) {
    text += ", " + rendered[0];
  }
  texts.push_back(text + "]");
  out.push_back(std::move(c));
}

/* A where (object or array form) into out; returns its normalized text. */
std::string parse_where(CatalogSource &catalog, const TableDesc &table, const Json &where,
                        std::vector<Condition> &conditions, int depth) {
  std::vector<std::string> texts;
  if (where.type == Json::Type::Object) {
    for (const auto &[name, value] : where.members) {
      if (name == "or" && value.type == Json::Type::Array && !table.column("or"))
        invalid("invalid $query where: " + json_dump(where),
                "{\"or\": [where, ...]} is a condition of the array form: [{\"or\": ...}].");
      Json item;
      item.type = Json::Type::Array;
      Json column, op;
      column.type = op.type = Json::Type::String;
      column.text = name;
      op.text = value.type == Json::Type::Null ? "is null" : "=";
      item.items = {column, op};
      if (value.type != Json::Type::Null) item.items.push_back(value);
      parse_condition(catalog, table, item, conditions, texts, depth);
    }
  } else if (where.type == Json::Type::Array) {
    for (const Json &item : where.items)
      parse_condition(catalog, table, item, conditions, texts, depth);
  } else {
    invalid("invalid $query where: " + json_dump(where),
            "where is an object of column values, or an array of conditions.");
  }
  std::string out = "[";
  for (size_t i = 0; i < texts.size(); i++) out += (i ? ", " : "") + texts[i];
  return out + "]";
}

/* One order_by item: "col" or {"col": "desc nulls last"}. */
OrderKey parse_order_item(const TableDesc &table, const Json &item) {
  OrderKey k;
  std::string dir = "asc";
  if (item.type == Json::Type::String) {
    k.column = query_column(table, item, "order_by");
  } else if (item.type == Json::Type::Object && item.members.size() == 1 &&
             item.members[0].second.type == Json::Type::String) {
    Json name;
    name.type = Json::Type::String;
    name.text = item.members[0].first;
    k.column = query_column(table, name, "order_by");
    dir = item.members[0].second.text;
    std::transform(dir.begin(), dir.end(), dir.begin(),
                   [](unsigned char ch) { return std::tolower(ch); });
  } else {
    invalid("invalid $query order_by item: " + json_dump(item),
            "An item is \"column\" or {\"column\": \"desc\"}.");
  }
  if (dir == "asc" || dir == "asc nulls last") {
  } else if (dir == "asc nulls first") {
    k.nulls_first = true;
  } else if (dir == "desc" || dir == "desc nulls first") {
    k.desc = k.nulls_first = true;
  } else if (dir == "desc nulls last") {
    k.desc = true;
  } else {
    invalid(
        "invalid $query order_by direction \"" + dir + "\" for column \"" + k.column.name + "\"",
        "Directions: asc, desc, each optionally followed by nulls first or nulls last.");
  }
  return k;
}

std::string parse_order(const TableDesc &table, const Json &order, ListQuery &q) {
  std::vector<const Json *> items;
  if (order.type == Json::Type::Array)
    for (const Json &item : order.items) items.push_back(&item);
  else
    items.push_back(&order);
  std::string out = "[";
  for (const Json *item : items) {
    OrderKey k = parse_order_item(table, *item);
    for (const OrderKey &o : q.order)
      if (o.column.attnum == k.column.attnum)
        invalid("invalid $query order_by: column \"" + k.column.name + "\" is named twice");
    std::string dir =
        std::string(k.desc ? "desc" : "asc") + (k.nulls_first ? " nulls first" : " nulls last");
    out +=
        (q.order.empty() ? "{" : ", {") + json_quote(k.column.name) + ": " + json_quote(dir) + "}";
    q.order.push_back(std::move(k));
  }
  return out + "]";
}

/* limit/offset: an integer >= 0. */
int64_t parse_count(const Json &v, const char *name) {
  bool integral = v.type == Json::Type::Number &&
                  v.text.find_first_not_of("0123456789") == std::string::npos && !v.text.empty() &&
                  v.text.size() <= 18;
  if (!integral)
    invalid(std::string("invalid $query ") + name + ": " + json_dump(v),
            std::string(name) + " must be an integer of 0 or more.");
  return std::strtoll(v.text.c_str(), nullptr, 10);
}

}  // namespace

const char *cmp_op_name(CmpOp op) {
  switch (op) {
    case CmpOp::Eq:
      return "=";
    case CmpOp::Ne:
      return "<>";
    case CmpOp::Lt:
      return "<";
    case CmpOp::Le:
      return "<=";
    case CmpOp::Gt:
      return ">";
    case CmpOp::Ge:
      return ">=";
    case CmpOp::In:
      return "in";
    case CmpOp::IsNull:
      return "is null";
    case CmpOp::NotNull:
      return "is not null";
    case CmpOp::Or:
      return "or";
  }
  return "?";
}

std::string parse_query(CatalogSource &catalog, const TableDesc &table, const Json &query,
                        ListQuery &q) {
  if (query.type != Json::Type::Object)
    invalid("invalid $query for table " + display(table) + ": it must be a JSON object");
  std::vector<std::pair<std::string, std::string>> members;
  for (const auto &[key, value] : query.members) {
    if (key == "where") {
      members.emplace_back(key, parse_where(catalog, table, value, q.where));
    } else if (key == "order_by") {
      members.emplace_back(key, parse_order(table, value, q));
    } else if (key == "limit") {
      q.limit = parse_count(value, "limit");
      members.emplace_back(key, std::to_string(*q.limit));
    } else if (key == "offset") {
      q.offset = parse_count(value, "offset");
      if (q.offset > 0) members.emplace_back(key, std::to_string(q.offset));
    } else {
      invalid("unknown $query option \"" + key + "\" for table " + display(table),
              "Options: where, order_by, limit, offset.");
    }
  }
  return object_text(std::move(members));
}

}  // namespace ectosync
