/*
 * jsonb_rebuild.cpp: ectosync._jsonb_rebuild(value jsonb, depth int), a
 * test-only SQL function that rebuilds a jsonb value with the writer of
 * jsonb_writer.hpp: containers down to `depth` levels become new nodes (keys
 * added in reverse order, so that the writer must sort them; scalars as new
 * strings/numerics/bools/nulls), deeper ones and the tails of arrays are raw
 * copies.  The result must be byte-identical to the input (the regression
 * tests compare the binary images), which proves that raw copies, offsets,
 * strides and alignment match PostgreSQL's own encoder.
 */
#include "value/jsonb_writer.hpp"
#include "pg/pg_boundary.hpp"

extern "C" {
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/jsonb.h"
}

using namespace ectosync;

/* A new node for e, rebuilt `depth` levels deep. */
static jb::Node rebuild(const jb::Elem &e, int depth) {
  if (depth <= 0) return jb::Node::copy(e);
  pg_call([] { check_stack_depth(); }); /* (a deep input: an error, not a crash) */
  switch (e.type) {
    case JENTRY_ISSTRING:
      return jb::Node::string(e.str());
    case JENTRY_ISNUMERIC:
      return jb::Node::number(e.numeric());
    case JENTRY_ISBOOL_TRUE:
    case JENTRY_ISBOOL_FALSE:
      return jb::Node::boolean_value(e.type == JENTRY_ISBOOL_TRUE);
    case JENTRY_ISNULL:
      return jb::Node::null();
    default:
      break;
  }
  jb::View v(e);
  if (v.is_object()) {
    jb::Node obj = jb::Node::object();
    for (uint32_t i = v.size(); i-- > 0;) obj.set(v.key(i), rebuild(v.value(i), depth - 1));
    return obj;
  }
  /* Arrays: the first three elements one by one, then (odd depths) the
   * rest as one raw range, or (even depths) one by one too. */
  jb::Node arr = jb::Node::array();
  jb::Cursor c(v);
  while (!c.done() && (c.index() < 3 || depth % 2 == 0)) arr.push(rebuild(c.next(), depth - 1));
  if (!c.done()) arr.push(jb::Node::copy_range(v, c.index(), v.size()));
  return arr;
}

/* SQL: ectosync._jsonb_rebuild(value jsonb, depth int) RETURNS jsonb */
ECTOSYNC_FUNCTION(ectosync_jsonb_rebuild) {
  Jsonb *value = PG_GETARG_JSONB_P(0);
  int depth = PG_GETARG_INT32(1);
  Jsonb *result = [&] {
    jb::View root(value);
    jb::Node node =
        JB_ROOT_IS_SCALAR(value)
            ? rebuild(root.at(0), depth)
            : rebuild(jb::Elem{JENTRY_ISCONTAINER, reinterpret_cast<const char *>(&value->root),
                               VARSIZE(value) - VARHDRSZ},
                      depth);
    return jb::to_jsonb(node);
  }();
  PG_RETURN_JSONB_P(result);
}
