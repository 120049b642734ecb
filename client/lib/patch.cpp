/*
 * patch.cpp: JSON Patch (RFC 6902) on an ectosync::Json (see patch.hpp).
 */
#include "patch.hpp"

#include <cstdlib>

namespace ectosync {
namespace {

using Value = Json;
using Error = PatchError;

/* RFC 6901: "/a~1b/0" -> {"a/b", "0"}. */
std::vector<std::string> pointer(const std::string &path) {
  std::vector<std::string> tokens;
  if (path.empty()) return tokens;
  if (path[0] != '/') throw Error("json patch: path \"" + path + "\" does not start with '/'");
  size_t start = 1;
  for (;;) {
    size_t end = path.find('/', start);
    std::string raw =
        path.substr(start, end == std::string::npos ? std::string::npos : end - start);
    std::string token;
    for (size_t k = 0; k < raw.size(); k++) {
      if (raw[k] == '~' && k + 1 < raw.size() && (raw[k + 1] == '0' || raw[k + 1] == '1')) {
        token += raw[k + 1] == '0' ? '~' : '/';
        k++;
      } else {
        token += raw[k];
      }
    }
    tokens.push_back(std::move(token));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return tokens;
}

/* An array index token: digits without a leading zero, at most limit. */
size_t array_index(const std::string &token, size_t limit, const std::string &path) {
  bool digits = !token.empty() && token.find_first_not_of("0123456789") == std::string::npos &&
                (token == "0" || token[0] != '0');
  size_t index = digits ? std::strtoull(token.c_str(), nullptr, 10) : limit + 1;
  if (index > limit) throw Error("json patch: bad array index in \"" + path + "\"");
  return index;
}

/* The container the last token of path refers into. */
Value &parent_of(Value &doc, const std::vector<std::string> &tokens, const std::string &path) {
  Value *v = &doc;
  for (size_t t = 0; t + 1 < tokens.size(); t++) {
    if (v->type == Value::Type::Object) {
      v = v->find(tokens[t]);
      if (!v) throw Error("json patch: no member \"" + tokens[t] + "\" on \"" + path + "\"");
    } else if (v->type == Value::Type::Array && !v->items.empty()) {
      v = &v->items[array_index(tokens[t], v->items.size() - 1, path)];
    } else {
      throw Error("json patch: \"" + path + "\" goes through a scalar or an empty array");
    }
  }
  return *v;
}

Value &at(Value &doc, const std::string &path) {
  auto tokens = pointer(path);
  if (tokens.empty()) return doc;
  Value &parent = parent_of(doc, tokens, path);
  if (parent.type == Value::Type::Object) {
    Value *v = parent.find(tokens.back());
    if (!v) throw Error("json patch: nothing at \"" + path + "\"");
    return *v;
  }
  if (parent.type != Value::Type::Array || parent.items.empty())
    throw Error("json patch: nothing at \"" + path + "\"");
  return parent.items[array_index(tokens.back(), parent.items.size() - 1, path)];
}

void add(Value &doc, const std::string &path, Value value) {
  auto tokens = pointer(path);
  if (tokens.empty()) {
    doc = std::move(value);
    return;
  }
  Value &parent = parent_of(doc, tokens, path);
  if (parent.type == Value::Type::Object) {
    if (Value *v = parent.find(tokens.back()))
      *v = std::move(value);
    else
      parent.members.emplace_back(tokens.back(), std::move(value));
  } else if (parent.type == Value::Type::Array) {
    size_t index = tokens.back() == "-" ? parent.items.size()
                                        : array_index(tokens.back(), parent.items.size(), path);
    parent.items.insert(parent.items.begin() + static_cast<std::ptrdiff_t>(index),
                        std::move(value));
  } else {
    throw Error("json patch: cannot add into a scalar at \"" + path + "\"");
  }
}

Value remove(Value &doc, const std::string &path) {
  auto tokens = pointer(path);
  if (tokens.empty()) throw Error("json patch: cannot remove the whole document");
  Value &parent = parent_of(doc, tokens, path);
  Value out;
  if (parent.type == Value::Type::Object) {
    for (auto it = parent.members.begin(); it != parent.members.end(); ++it) {
      if (it->first == tokens.back()) {
        out = std::move(it->second);
        parent.members.erase(it);
        return out;
      }
    }
  } else if (parent.type == Value::Type::Array && !parent.items.empty()) {
    size_t index = array_index(tokens.back(), parent.items.size() - 1, path);
    out = std::move(parent.items[index]);
    parent.items.erase(parent.items.begin() + static_cast<std::ptrdiff_t>(index));
    return out;
  }
  throw Error("json patch: nothing to remove at \"" + path + "\"");
}

const std::string &member_text(const Value &op, const char *name) {
  const Value *v = op.find(name);
  if (!v || v->type != Value::Type::String)
    throw Error(std::string("json patch: an operation without a string \"") + name + "\"");
  return v->text;
}

const Value &member_value(const Value &op) {
  const Value *v = op.find("value");
  if (!v) throw Error("json patch: an operation without \"value\"");
  return *v;
}

}  // namespace

void apply_patch(Value &doc, const Value &patch) {
  if (patch.type != Value::Type::Array) throw Error("json patch: not an array of operations");
  for (const Value &op : patch.items) {
    const std::string &name = member_text(op, "op");
    const std::string &path = member_text(op, "path");
    if (name == "add") {
      add(doc, path, member_value(op));
    } else if (name == "remove") {
      remove(doc, path);
    } else if (name == "replace") {
      at(doc, path) = member_value(op);
    } else if (name == "move") {
      Value v = remove(doc, member_text(op, "from"));
      add(doc, path, std::move(v));
    } else if (name == "copy") {
      Value v = at(doc, member_text(op, "from"));
      add(doc, path, std::move(v));
    } else if (name == "test") {
      if (json_dump(at(doc, path)) != json_dump(member_value(op)))
        throw Error("json patch: test failed at \"" + path + "\"");
    } else {
      throw Error("json patch: unknown operation \"" + name + "\"");
    }
  }
}

}  // namespace ectosync
