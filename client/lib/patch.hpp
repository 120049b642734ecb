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

namespace ectosync {

struct PatchError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/*
 * Applies a JSON Patch (an array of {"op", "path"[, "value"]}) to doc, in
 * order: add, remove and replace (what ectosync.changes() sends), and also
 * move, copy and test.  Throws PatchError naming the operation that failed;
 * doc may then be partly patched (hold the value again).
 */
void apply_patch(Json &doc, const Json &patch);

}  // namespace ectosync
