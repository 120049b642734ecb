/*
 * diff.hpp: the JSON Patch (RFC 6902) that turns the rows of a held value
 * into their new state (used by changes(), held.cpp).
 *
 * A client that holds a value in the server session gets, per change, the
 * operations on its copy instead of the whole value.  The value is held in
 * parts (parts.hpp); only the parts events replaced are read, and in them
 * only the rows whose keys the events touched, each looked up by key.
 * Rows and their associations are read in place (jsonb_writer.hpp); equal
 * subtrees are recognized by their bytes (jsonb's binary form of equal
 * content is the same bytes).  Nested lists are ordered by primary key in
 * both values and are merged: rows only in the old list are removed, rows
 * only in the new one added, rows in both diffed column by column and
 * association by association.  The head ("seq" and the rest) is never
 * diffed: it changes only when the value is loaded again, which replaces
 * the whole value.
 *
 * Paths are JSON Pointers (RFC 6901) into the value as it stands after the
 * operations before them, as RFC 6902 applies them: in order.
 */
#pragma once

#include "value/jsonb_writer.hpp"
#include "core/plan.hpp"
#include "value/sync.hpp"

#include <deque>
#include <optional>
#include <string>
#include <vector>

namespace ectosync {

class Diff {
 public:
  explicit Diff(const Plan &plan) : plan_(plan) {}

  /*
   * The operations from the root rows in old_parts to those in new_parts,
   * appended to ops_ (an array node of {"op", "path"[, "value"]} objects
   * whose values copy the new parts' bytes: they must outlive ops()).
   * new_parts are old_parts with some replaced (sync_parts()): only those
   * are read, and in them only the rows touched names.  Paths are "/rows/<index>...".
   */
  void parts(const std::vector<Jsonb *> &old_parts, const std::vector<Jsonb *> &new_parts,
             const TouchedRows &touched);
  jb::Node &ops() { return ops_; }
  size_t count() const { return ops_.items.size(); }

 private:
  void list(const std::string &path, jb::View old_list, jb::View new_list, const PlanNode &node,
            uint32_t base = 0);
  void ordered_list(const std::string &path, jb::View old_list, jb::View new_list,
                    const PlanNode &node, uint32_t base);
  void rows(const std::string &path, jb::View old_list, jb::View new_list, const PlanNode &node,
            uint32_t base, const PartTouch &touch);
  void row(const std::string &path, jb::View old_row, jb::View new_row, const PlanNode &node);
  void one(const std::string &path, const jb::Elem &old_row, const jb::Elem &new_row,
           const PlanNode &node);
  void op(const char *name, const std::string &path, std::optional<jb::Node> value);
  int compare_pk(jb::View a, jb::View b, const PlanNode &node) const;

  const Plan &plan_;
  jb::Node ops_ = jb::Node::array();
  std::deque<std::string> paths_; /* the strings ops_ points into */
};

/* A JSON Pointer reference token: "~" -> "~0", "/" -> "~1". */
std::string pointer_token(std::string_view key);

}  // namespace ectosync
