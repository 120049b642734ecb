/*
 * json.hpp: a tiny JSON tree, its parser and its printer.  Pure C++ (no
 * postgres.h): the server reads assocs specs and filters with it, and the
 * client keeps held values in it and patches them (client/lib/patch.hpp).
 * Numbers keep their text as written: a numeric(30,10) never passes
 * through a double.
 */
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ectosync {

struct Json {
  enum class Type { Null, Bool, Number, String, Array, Object };
  Type type = Type::Null;
  bool boolean = false;
  std::string text;                                  /* String value, Number's digits */
  std::vector<Json> items;                           /* Array */
  std::vector<std::pair<std::string, Json>> members; /* Object, in input order */

  /* Object member, or nullptr. */
  const Json *find(std::string_view key) const;
  Json *find(std::string_view key);
};

/* What parse_json() found wrong, and where (1-based character). */
class JsonError : public std::runtime_error {
 public:
  JsonError(const std::string &what, size_t character);
  size_t character;
};

/* Parses a whole JSON text (nested at most 200 deep); throws JsonError. */
Json parse_json(std::string_view text);
/* A JSON string literal: quoted and escaped. */
std::string json_quote(std::string_view text);
/* Compact JSON text of v (members in their order). */
std::string json_dump(const Json &v);

}  // namespace ectosync
