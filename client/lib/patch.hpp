/*
 * patch.hpp: JSON Patch (RFC 6902) applied to the reference client's copy
 * of a held value, an ectosync::Json tree (src/core/json.hpp: numbers keep their
 * text, strings are decoded, so that patch paths, JSON Pointers (RFC 6901),
 * match object keys whatever their escapes).
 *
 * A holder of a session-held value (ectosync.hold/wait_changes) applies each
 * patch in place: no reparse of the value per change.
 */
#pragma once

#include "core/json.hpp"

#include <stdexcept>
#include <string>
#include <vector>

namespace ectosync {

struct PatchError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/*
 * A JSON Patch (an array of {"op", "path"[, "value"]}) read once, to be
 * applied to many documents: a hub's holders of one shared value all get
 * the same patch.  Paths are split once, and each object member is looked
 * for first where it was in the last document (documents of one shape
 * keep their members in one order), so that a path costs no scan of the
 * members.  It points into patch, which must outlive it.  Throws
 * PatchError for a malformed operation.
 */
class CompiledPatch {
 public:
  explicit CompiledPatch(const Json &patch);

  /*
   * Applies the operations to doc, in order: add, remove and replace (what
   * ectosync.changes() sends), and also move, copy and test.  Throws
   * PatchError naming the operation that failed; doc may then be partly
   * patched (hold the value again).
   */
  void apply(Json &doc);

 private:
  /* One reference token of a JSON Pointer. */
  struct Step {
    std::string key;
    size_t index;    /* as an array index: digits without a leading zero, or npos */
    size_t hint = 0; /* where the member was found last */
  };
  struct Path {
    std::string text; /* for errors */
    std::vector<Step> steps;
  };
  enum class Kind { Add, Remove, Replace, Move, Copy, Test };
  struct Op {
    Kind kind;
    Path path, from;
    const Json *value = nullptr;
  };

  static Path compile_path(const std::string &text);
  static Json *member(Json &object, Step &step);
  static size_t index(const Step &step, size_t limit, const Path &path);
  static Json &parent_of(Json &doc, Path &path);
  static Json &at(Json &doc, Path &path);
  static void add(Json &doc, Path &path, Json value);
  static Json remove(Json &doc, Path &path);

  std::vector<Op> ops_;
};

/* Compiles patch and applies it to doc (see CompiledPatch::apply). */
void apply_patch(Json &doc, const Json &patch);

}  // namespace ectosync
