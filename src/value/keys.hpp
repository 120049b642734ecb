/*
 * keys.hpp: key values of rows, as events carry them (text) and as values
 * hold them (jsonb), compared in the order load() gives rows.
 *
 * Events carry each key column's value as text, as to_jsonb renders it
 * (event.hpp, capture.cpp); the rows of a value are jsonb, ordered by
 * primary key at every level in the order of plan.hpp's KeyKind: numbers
 * numerically, strings bytewise (char(n) blank-padded), booleans false
 * first, dates and times in time order.  sync.cpp locates rows by key; diff.cpp locates the rows a
 * change touched.
 */
#pragma once

#include "value/jsonb_writer.hpp"
#include "core/plan.hpp"

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ectosync {

/* Key column values as text; nullopt is SQL NULL. */
using Texts = std::vector<std::optional<std::string>>;

/* One key column's value: its text, and its numeric for Number columns. */
struct Part {
  std::optional<std::string> text;
  Numeric num = nullptr;
};
using Key = std::vector<Part>;

/* The Key of texts for cols (numbers parsed once). */
Key make_key(const std::vector<Column> &cols, const Texts &texts);

/*
 * Order of a row's column value e against a key part; SQL NULLs (or a
 * missing column) sort first.  Numbers compare numerically, booleans
 * false first, times as compare_time_texts(), other strings bytewise.
 */
int compare_elem_part(KeyKind kind, const std::optional<jb::Elem> &e, const Part &p);

/*
 * Order of two column values of rows, as compare_elem_part() orders a value
 * against a key part (SQL NULLs, or missing columns, first).
 */
int compare_elems(KeyKind kind, const std::optional<jb::Elem> &a, const std::optional<jb::Elem> &b);

/* A key value's text as events carry it: a number's, a string's, "true" or
 * "false"; nullopt for null and containers. */
std::optional<std::string> elem_text(const jb::Elem &e);

/* The texts of cols in a row (nullopt for NULL or missing). */
Texts row_texts(jb::View row, const std::vector<Column> &cols);

/* Whether some key value is SQL NULL (such a key matches nothing). */
bool has_null(const Texts &t);
/*
 * Whether texts a and b of cols are equal as the columns compare them:
 * numbers by value, the rest by their bytes.  (A foreign key and the key
 * it references may render one number at two scales: "1.0" and "1".)
 */
bool same_texts(const std::vector<Column> &cols, const Texts &a, const Texts &b);

/* Row order: -1/0/1 of the row's cols against key. */
int compare_row_key(jb::View row, const std::vector<Column> &cols, const Key &key);

/* Binary search of a pk-ordered list: found index, or insertion point. */
std::pair<uint32_t, bool> search(jb::View list, const std::vector<Column> &pk, const Key &key);

}  // namespace ectosync
