/*
 * jsonb_writer.cpp: in-place reading and raw-copying construction of jsonb
 * (see jsonb_writer.hpp).  The format follows PostgreSQL 15's jsonb_util.c:
 * a reader finds a child's offset by summing lengths back to the nearest
 * JEntry that holds an end offset, and aligns numerics and containers with
 * INTALIGN relative to the container's data start; since every container
 * starts INTALIGNed relative to the varlena, aligning relative to the
 * varlena start (as convertJsonbValue does) gives the same padding.
 */
#include "value/jsonb_writer.hpp"

#include "pg/pg_boundary.hpp"

extern "C" {
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"
}

#include <algorithm>
#include <cstring>
#include <numeric>

namespace ectosync::jb {

/* Start of the index-th child's bytes, relative to the data start. */
uint32_t View::offset(uint32_t index) const {
  uint32_t off = 0;
  for (uint32_t i = index; i-- > 0;) {
    JEntry e = c_->children[i];
    off += JBE_OFFLENFLD(e);
    if (JBE_HAS_OFF(e)) break;
  }
  return off;
}

/* Makes an Elem of the JEntry e whose bytes span [off, off + len). */
static Elem make_elem(const char *base, JEntry e, uint32_t off, uint32_t len) {
  Elem el;
  el.type = e & JENTRY_TYPEMASK;
  if (el.type == JENTRY_ISNUMERIC || el.type == JENTRY_ISCONTAINER) {
    uint32_t aligned = INTALIGN(off);
    el.data = base + aligned;
    el.len = len - (aligned - off);
  } else {
    el.data = base + off;
    el.len = len;
  }
  return el;
}

/* The index-th child, found from the JEntries as getJsonbOffset does. */
Elem View::child(uint32_t index) const {
  JEntry e = c_->children[index];
  uint32_t off = offset(index);
  uint32_t len = JBE_HAS_OFF(e) ? JBE_OFFLENFLD(e) - off : JBE_OFFLENFLD(e);
  return make_elem(base(), e, off, len);
}

/*
 * Object keys are sorted by (length, bytes).  A row's handful of keys is
 * read in order, each offset from the last (a length comparison rejects
 * most); larger objects are searched, each probe summing lengths back to
 * the last stored offset.
 */
std::optional<Elem> View::get(std::string_view key) const {
  if (!is_object()) return std::nullopt;
  uint32_t n = size();
  if (n <= 16) {
    const char *base = this->base();
    uint32_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
      JEntry e = c_->children[i];
      uint32_t end = JBE_HAS_OFF(e) ? JBE_OFFLENFLD(e) : off + JBE_OFFLENFLD(e);
      int c = compare_keys(std::string_view(base + off, end - off), key);
      if (c == 0) return value(i);
      if (c > 0) return std::nullopt;
      off = end;
    }
    return std::nullopt;
  }
  uint32_t lo = 0, hi = n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    int c = compare_keys(this->key(mid), key);
    if (c == 0) return value(mid);
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return std::nullopt;
}

/* Next child: the running offset advances as JBE_ADVANCE_OFFSET does. */
Elem Cursor::next() {
  const JsonbContainer *c = v_.container();
  JEntry e = c->children[i_];
  const char *base = reinterpret_cast<const char *>(&c->children[n_]);
  uint32_t end = JBE_HAS_OFF(e) ? JBE_OFFLENFLD(e) : offset_ + JBE_OFFLENFLD(e);
  Elem el = make_elem(base, e, offset_, end - offset_);
  offset_ = end;
  i_++;
  return el;
}

/* The order of jsonb object keys: shorter first, then memcmp. */
int compare_keys(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  if (a.empty()) return 0;
  int c = std::memcmp(a.data(), b.data(), a.size());
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

namespace {

[[noreturn]] void too_large() {
  throw Error(
      ERRCODE_PROGRAM_LIMIT_EXCEEDED, "ecto_sync: jsonb value too large",
      "A jsonb container may hold at most " + std::to_string(JENTRY_OFFLENMASK) + " bytes.");
}

/*
 * The layout pass: with out == nullptr it only computes positions (measure);
 * otherwise it also stores the bytes.  Positions are relative to the start
 * of the varlena, as in convertJsonbValue's buffer.
 */
struct Layout {
  char *out;

  void put(size_t pos, const void *src, size_t n) const {
    if (out && n) std::memcpy(out + pos, src, n);
  }
  void put32(size_t pos, uint32_t v) const {
    if (out) std::memcpy(out + pos, &v, sizeof v);
  }
  /* INTALIGN cur with zero bytes, as padBufferToInt does. */
  size_t pad(size_t cur) const {
    size_t aligned = INTALIGN(cur);
    if (out && aligned > cur) std::memset(out + cur, 0, aligned - cur);
    return aligned;
  }

  /* A raw element at cur: its bytes, re-aligned for the new position. */
  size_t raw(const Elem &e, size_t cur) const {
    if (e.is_numeric() || e.is_container()) cur = pad(cur);
    put(cur, e.data, e.len);
    return cur + e.len;
  }

  /* One child at cur; sets its JEntry type; returns its end. */
  size_t element(const Node &n, size_t cur, uint32_t &type) const {
    switch (n.kind) {
      case Node::Kind::Raw:
        type = n.raw.type;
        return raw(n.raw, cur);
      case Node::Kind::String:
        type = JENTRY_ISSTRING;
        put(cur, n.data, n.len);
        return cur + n.len;
      case Node::Kind::Numeric: {
        type = JENTRY_ISNUMERIC;
        cur = pad(cur);
        size_t len = VARSIZE_ANY(n.data);
        put(cur, n.data, len);
        return cur + len;
      }
      case Node::Kind::Bool:
        type = n.boolean ? JENTRY_ISBOOL_TRUE : JENTRY_ISBOOL_FALSE;
        return cur;
      case Node::Kind::Null:
        type = JENTRY_ISNULL;
        return cur;
      case Node::Kind::Array:
      case Node::Kind::Object:
        type = JENTRY_ISCONTAINER;
        return container(n, pad(cur));
      case Node::Kind::RawRange:
        break;
    }
    throw Error(ERRCODE_INTERNAL_ERROR, "ecto_sync: a raw range outside of an array");
  }

  /* Stores child idx's JEntry: an end offset every JB_OFFSET_STRIDE, else a length. */
  void entry(size_t pos, uint32_t idx, uint32_t type, size_t data_start, size_t start,
             size_t end) const {
    if (end - data_start > JENTRY_OFFLENMASK) too_large();
    uint32_t meta = type;
    if (idx % JB_OFFSET_STRIDE == 0)
      meta |= JENTRY_HAS_OFF | static_cast<uint32_t>(end - data_start);
    else
      meta |= static_cast<uint32_t>(end - start);
    put32(pos + 4 + 4 * static_cast<size_t>(idx), meta);
  }

  /* An array or object at pos (INTALIGNed); returns its end. */
  size_t container(const Node &n, size_t pos) const {
    if (n.kind == Node::Kind::Array) {
      size_t count = 0;
      for (const Node &item : n.items)
        count += item.kind == Node::Kind::RawRange ? item.to - item.from : 1;
      if (count > JB_CMASK) too_large();
      put32(pos, static_cast<uint32_t>(count) | JB_FARRAY);
      size_t data_start = pos + 4 + 4 * count, cur = data_start;
      uint32_t idx = 0;
      for (const Node &item : n.items) {
        if (item.kind == Node::Kind::RawRange) {
          Cursor c(item.range);
          c.seek(item.from);
          for (uint32_t i = item.from; i < item.to; i++) {
            Elem e = c.next();
            size_t end = raw(e, cur);
            entry(pos, idx++, e.type, data_start, cur, end);
            cur = end;
          }
        } else {
          uint32_t type = 0;
          size_t end = element(item, cur, type);
          entry(pos, idx++, type, data_start, cur, end);
          cur = end;
        }
      }
      return cur;
    }
    /* Object: keys sorted and unique (the last of equal keys wins).  Rows
     * have a handful of keys: ordered on the stack, without allocating. */
    constexpr size_t kSmall = 16;
    uint32_t small[kSmall];
    std::vector<uint32_t> large;
    uint32_t *order = small;
    if (n.keys.size() > kSmall) {
      large.resize(n.keys.size());
      order = large.data();
    }
    size_t count = n.keys.size();
    std::iota(order, order + count, 0);
    auto less = [&](uint32_t a, uint32_t b) { return compare_keys(n.keys[a], n.keys[b]) < 0; };
    if (count <= kSmall) {
      /* insertion sort: stable, and keys come nearly sorted */
      for (size_t i = 1; i < count; i++)
        for (size_t j = i; j > 0 && less(order[j], order[j - 1]); j--)
          std::swap(order[j], order[j - 1]);
    } else {
      std::stable_sort(order, order + count, less);
    }
    size_t kept = 0;
    for (size_t i = 0; i < count; i++)
      if (i + 1 == count || compare_keys(n.keys[order[i]], n.keys[order[i + 1]]) != 0)
        order[kept++] = order[i];
    size_t pairs = kept;
    if (pairs > JB_CMASK) too_large();
    put32(pos, static_cast<uint32_t>(pairs) | JB_FOBJECT);
    size_t data_start = pos + 4 + 8 * pairs, cur = data_start;
    uint32_t idx = 0;
    for (size_t u = 0; u < pairs; u++) {
      std::string_view key = n.keys[order[u]];
      put(cur, key.data(), key.size());
      entry(pos, idx++, JENTRY_ISSTRING, data_start, cur, cur + key.size());
      cur += key.size();
    }
    for (size_t u = 0; u < pairs; u++) {
      uint32_t type = 0;
      size_t end = element(n.items[order[u]], cur, type);
      entry(pos, idx++, type, data_start, cur, end);
      cur = end;
    }
    return cur;
  }

  /* The root container at VARHDRSZ: scalars go in a one-element scalar array. */
  size_t root(const Node &n) const {
    size_t pos = VARHDRSZ;
    if (n.kind == Node::Kind::Array || n.kind == Node::Kind::Object) return container(n, pos);
    if (n.kind == Node::Kind::Raw && n.raw.is_container()) return raw(n.raw, pos);
    put32(pos, 1 | JB_FARRAY | JB_FSCALAR);
    size_t data_start = pos + 8;
    uint32_t type = 0;
    size_t end = element(n, data_start, type);
    entry(pos, 0, type, data_start, data_start, end);
    return end;
  }
};

}  // namespace

/* The layout pass without output: the size of the varlena. */
size_t measure(const Node &root) {
  return Layout{nullptr}.root(root);
}

/* The layout pass with output, then the varlena header. */
void write(const Node &root, char *buf, size_t size) {
  size_t end = Layout{buf}.root(root);
  if (end != size)
    throw Error(ERRCODE_INTERNAL_ERROR, "ecto_sync: jsonb layout changed between passes");
  SET_VARSIZE(buf, size);
}

/* A palloc'd jsonb of root: measured first, so allocated once. */
Jsonb *to_jsonb(const Node &root) {
  size_t size = measure(root);
  if (size > MaxAllocSize) too_large();
  char *buf = pg_call([&] { return static_cast<char *>(palloc(size)); });
  write(root, buf, size);
  return reinterpret_cast<Jsonb *>(buf);
}

std::string numeric_text(Numeric n) {
  char *s = pg_call(
      [&] { return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(n))); });
  std::string out(s);
  pg_call([&] { pfree(s); });
  return out;
}

int compare_numeric(Numeric a, Numeric b) {
  /* Equal bytes are equal numbers (binary searches end on one): no call. */
  if (VARSIZE_ANY(a) == VARSIZE_ANY(b) && std::memcmp(a, b, VARSIZE_ANY(a)) == 0) return 0;
  return pg_call([&] {
    return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(a), NumericGetDatum(b)));
  });
}

int compare_bytes(std::string_view a, std::string_view b) {
  int c = std::memcmp(a.data(), b.data(), std::min(a.size(), b.size()));
  if (c != 0) return c < 0 ? -1 : 1;
  if (a.size() == b.size()) return 0;
  return a.size() < b.size() ? -1 : 1;
}

}  // namespace ectosync::jb
