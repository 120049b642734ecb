/*
 * jsonb_writer.hpp: read and build jsonb in PostgreSQL's binary format
 * (utils/jsonb.h) without going through JsonbValue trees.
 *
 * sync() patches values of several megabytes where one row changed.  Decoding
 * such a value into JsonbValues and encoding it back would cost as much as a
 * load.  Instead:
 *
 *  - View / Elem read a container in place: an element is a JEntry type and
 *    the span of its bytes, found from the JEntry array (offsets every
 *    JB_OFFSET_STRIDE entries, lengths otherwise).  Nothing is allocated and
 *    nothing can raise an ERROR, so C++ code may use them freely.
 *  - Node describes the output: new arrays/objects/scalars, or RAW copies of
 *    elements (scalars or whole containers) of an existing jsonb, copied byte
 *    for byte; RawRange copies a run of elements of an existing array.
 *  - measure()/write() lay the tree out exactly as jsonb_util.c's
 *    convertJsonbValue does: header, JEntries (end offset with JENTRY_HAS_OFF
 *    on every JB_OFFSET_STRIDE-th child, lengths otherwise), object keys
 *    sorted by (length, bytes) and unique, then values; numerics and nested
 *    containers INTALIGNed, the padding counted in the element's length.
 *
 * The layout is pure C++; to_jsonb() (in jsonb_writer.cpp) pallocs the result
 * and must be called through pg_call from code that owns C++ objects.
 */
#pragma once

extern "C" {
#include "postgres.h"
#include "utils/jsonb.h"
}

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ectosync::jb {

/* One element of a container, in place. */
struct Elem {
  uint32_t type = JENTRY_ISNULL; /* JENTRY_IS* */
  const char *data = nullptr;    /* numerics/containers: INTALIGNed start */
  uint32_t len = 0;              /* bytes of the content, padding excluded */

  bool is_string() const { return type == JENTRY_ISSTRING; }
  bool is_numeric() const { return type == JENTRY_ISNUMERIC; }
  bool is_null() const { return type == JENTRY_ISNULL; }
  bool is_bool() const { return type == JENTRY_ISBOOL_TRUE || type == JENTRY_ISBOOL_FALSE; }
  bool is_container() const { return type == JENTRY_ISCONTAINER; }
  std::string_view str() const { return {data, len}; }
  Numeric numeric() const { return reinterpret_cast<Numeric>(const_cast<char *>(data)); }
  const JsonbContainer *container() const { return reinterpret_cast<const JsonbContainer *>(data); }
};

/* The root container of a jsonb as an element (for raw copies). */
inline Elem root_elem(const Jsonb *j) {
  return Elem{JENTRY_ISCONTAINER, reinterpret_cast<const char *>(&j->root),
              static_cast<uint32_t>(VARSIZE(j) - VARHDRSZ)};
}

/* A container (array or object) read in place. */
class View {
 public:
  View() = default;
  explicit View(const JsonbContainer *c) : c_(c) {}
  explicit View(const Jsonb *j) : c_(&j->root) {}
  explicit View(const Elem &e) : c_(e.is_container() ? e.container() : nullptr) {}

  bool valid() const { return c_ != nullptr; }
  const JsonbContainer *container() const { return c_; }
  bool is_array() const { return c_ && (c_->header & JB_FARRAY) && !(c_->header & JB_FSCALAR); }
  bool is_object() const { return c_ && (c_->header & JB_FOBJECT); }
  /* elements of an array, pairs of an object */
  uint32_t size() const { return c_ ? (c_->header & JB_CMASK) : 0; }
  /* JEntries: size() for arrays, 2 * size() for objects */
  uint32_t children() const { return is_object() ? 2 * size() : size(); }

  /* The index-th child (arrays: element; objects: keys then values). */
  Elem child(uint32_t index) const;
  Elem at(uint32_t i) const { return child(i); }
  std::string_view key(uint32_t i) const { return child(i).str(); }
  Elem value(uint32_t i) const { return child(i + size()); }
  /* Object lookup by key (binary search: keys are sorted by length, bytes). */
  std::optional<Elem> get(std::string_view key) const;
  /* Start of the index-th child's bytes (before padding), from the data start
   * (index == children(): the end of the last one). */
  uint32_t offset(uint32_t index) const;
  /* The data start: the children's bytes follow one another from here. */
  const char *data() const { return base(); }

 private:
  const char *base() const { return reinterpret_cast<const char *>(&c_->children[children()]); }
  const JsonbContainer *c_ = nullptr;
};

/* Reads the children of a container one after the other in O(1) each. */
class Cursor {
 public:
  explicit Cursor(View v) : v_(v), n_(v.children()) {}
  bool done() const { return i_ >= n_; }
  uint32_t index() const { return i_; }
  Elem next();
  /* Positions the cursor before child index. */
  void seek(uint32_t index) {
    i_ = index;
    offset_ = v_.offset(index);
  }

 private:
  View v_;
  uint32_t n_, i_ = 0, offset_ = 0;
};

/* (length, bytes): the order of object keys in jsonb */
int compare_keys(std::string_view a, std::string_view b);

/* What to write. */
struct Node {
  enum class Kind : uint8_t { Raw, RawRange, String, Numeric, Bool, Null, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  Elem raw;                           /* Raw: the element copied */
  const char *data = nullptr;         /* String: bytes; Numeric: the varlena */
  uint32_t len = 0;                   /* String: bytes */
  View range;                         /* RawRange: source array */
  uint32_t from = 0, to = 0;          /* RawRange: [from, to) */
  std::vector<Node> items;            /* Array: elements; Object: values */
  std::vector<std::string_view> keys; /* Object: keys, any order; last wins */

  static Node copy(const Elem &e) {
    Node n;
    n.kind = Kind::Raw;
    n.raw = e;
    return n;
  }
  /* Elements [from, to) of the array v, copied; only inside an array. */
  static Node copy_range(View v, uint32_t from, uint32_t to) {
    Node n;
    n.kind = Kind::RawRange;
    n.range = v;
    n.from = from;
    n.to = to;
    return n;
  }
  static Node string(std::string_view s) {
    Node n;
    n.kind = Kind::String;
    n.data = s.data();
    n.len = static_cast<uint32_t>(s.size());
    return n;
  }
  static Node number(Numeric num) {
    Node n;
    n.kind = Kind::Numeric;
    n.data = reinterpret_cast<const char *>(num);
    return n;
  }
  static Node boolean_value(bool b) {
    Node n;
    n.kind = Kind::Bool;
    n.boolean = b;
    return n;
  }
  static Node null() { return Node(); }
  static Node array() {
    Node n;
    n.kind = Kind::Array;
    return n;
  }
  static Node object() {
    Node n;
    n.kind = Kind::Object;
    return n;
  }
  void push(Node n) { items.push_back(std::move(n)); }
  void set(std::string_view key, Node n) {
    keys.push_back(key);
    items.push_back(std::move(n));
  }
};

/* Bytes of the jsonb varlena (header included) that write() produces. */
size_t measure(const Node &root);
/* Lays root out into buf (measure(root) bytes), varlena header included. */
void write(const Node &root, char *buf, size_t size);
/* measure + palloc in CurrentMemoryContext (through pg_call) + write. */
Jsonb *to_jsonb(const Node &root);

/* numeric_out of a jsonb number: the text a key column's output function
 * gives (events carry key values as that text).  Calls PostgreSQL through
 * pg_call. */
std::string numeric_text(Numeric n);
/* numeric_cmp: -1, 0, 1 (through pg_call). */
int compare_numeric(Numeric a, Numeric b);
/* Bytewise order of key strings (load orders text keys COLLATE "C"). */
int compare_bytes(std::string_view a, std::string_view b);

}  // namespace ectosync::jb
