/*
 * json.hpp: the small JSON document the reference client holds its value
 * in, and JSON Patch (RFC 6902) applied to it.
 *
 * A holder of a session-held value (ectosync.hold/changes) keeps its copy
 * as a document and applies each patch in place: no reparse of the value
 * per change.  Numbers keep their text exactly as the server printed them
 * (a numeric(30,10) column must not pass through a double); strings are
 * decoded, so that patch paths (JSON Pointers, RFC 6901) match object keys
 * whatever their escapes.  Objects keep their members in order.
 */
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace json {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Value {
  enum class Type { Null, Bool, Number, String, Array, Object };
  Type type = Type::Null;
  bool boolean = false;
  std::string text;                                   /* Number: literal; String: decoded */
  std::vector<Value> items;                           /* Array */
  std::vector<std::pair<std::string, Value>> members; /* Object */

  bool is_array() const { return type == Type::Array; }
  bool is_object() const { return type == Type::Object; }
  /* The member named key, or null. */
  Value *member(std::string_view key);
  const Value *member(std::string_view key) const;
};

/* Parses a whole JSON text (RFC 8259); throws Error naming the offset. */
Value parse(std::string_view text);
/* Compact JSON text of v. */
std::string dump(const Value &v);

/*
 * Applies a JSON Patch (an array of {"op", "path"[, "value"]}) to doc, in
 * order: add, remove and replace (what ectosync.changes() sends), and also
 * move, copy and test.  Throws Error naming the operation that failed; doc
 * may then be partly patched (reload it).
 */
void apply_patch(Value &doc, const Value &patch);

}  // namespace json
