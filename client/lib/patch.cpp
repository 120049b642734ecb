/*
 * patch.cpp: JSON Patch (RFC 6902) on an ectosync::Json (see patch.hpp).
 */
#include "patch.hpp"

#include <cstdlib>

namespace ectosync {
namespace {

using Error = PatchError;

const std::string &member_text(const Json &op, const char *name) {
  const Json *v = op.find(name);
  if (!v || v->type != Json::Type::String)
    throw Error(std::string("json patch: an operation without a string \"") + name + "\"");
  return v->text;
}

const Json &member_value(const Json &op) {
  const Json *v = op.find("value");
  if (!v) throw Error("json patch: an operation without \"value\"");
  return *v;
}

}  // namespace

/* RFC 6901: "/a~1b/0" -> {"a/b", "0"}. */
CompiledPatch::Path CompiledPatch::compile_path(const std::string &text) {
  Path path{text, {}};
  if (text.empty()) return path;
  if (text[0] != '/') throw Error("json patch: path \"" + text + "\" does not start with '/'");
  size_t start = 1;
  for (;;) {
    size_t end = text.find('/', start);
    std::string raw =
        text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    Step step;
    for (size_t k = 0; k < raw.size(); k++) {
      if (raw[k] == '~' && k + 1 < raw.size() && (raw[k + 1] == '0' || raw[k + 1] == '1')) {
        step.key += raw[k + 1] == '0' ? '~' : '/';
        k++;
      } else {
        step.key += raw[k];
      }
    }
    const std::string &t = step.key;
    bool digits = !t.empty() && t.size() < 19 &&
                  t.find_first_not_of("0123456789") == std::string::npos &&
                  (t == "0" || t[0] != '0');
    step.index = digits ? std::strtoull(t.c_str(), nullptr, 10) : std::string::npos;
    path.steps.push_back(std::move(step));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return path;
}

CompiledPatch::CompiledPatch(const Json &patch) {
  if (patch.type != Json::Type::Array) throw Error("json patch: not an array of operations");
  for (const Json &op : patch.items) {
    const std::string &name = member_text(op, "op");
    Op o;
    o.path = compile_path(member_text(op, "path"));
    if (name == "add") {
      o.kind = Kind::Add;
    } else if (name == "remove") {
      o.kind = Kind::Remove;
    } else if (name == "replace") {
      o.kind = Kind::Replace;
    } else if (name == "move") {
      o.kind = Kind::Move;
    } else if (name == "copy") {
      o.kind = Kind::Copy;
    } else if (name == "test") {
      o.kind = Kind::Test;
    } else {
      throw Error("json patch: unknown operation \"" + name + "\"");
    }
    if (o.kind == Kind::Move || o.kind == Kind::Copy)
      o.from = compile_path(member_text(op, "from"));
    if (o.kind == Kind::Add || o.kind == Kind::Replace || o.kind == Kind::Test)
      o.value = &member_value(op);
    ops_.push_back(std::move(o));
  }
}

/* The member step names, looked for first where it was last time. */
Json *CompiledPatch::member(Json &object, Step &step) {
  auto &members = object.members;
  if (step.hint < members.size() && members[step.hint].first == step.key)
    return &members[step.hint].second;
  for (size_t i = 0; i < members.size(); i++)
    if (members[i].first == step.key) {
      step.hint = i;
      return &members[i].second;
    }
  return nullptr;
}

/* The step as an array index, at most limit. */
size_t CompiledPatch::index(const Step &step, size_t limit, const Path &path) {
  if (step.index == std::string::npos || step.index > limit)
    throw Error("json patch: bad array index in \"" + path.text + "\"");
  return step.index;
}

/* The container the last step of path refers into. */
Json &CompiledPatch::parent_of(Json &doc, Path &path) {
  Json *v = &doc;
  for (size_t t = 0; t + 1 < path.steps.size(); t++) {
    Step &step = path.steps[t];
    if (v->type == Json::Type::Object) {
      v = member(*v, step);
      if (!v) throw Error("json patch: no member \"" + step.key + "\" on \"" + path.text + "\"");
    } else if (v->type == Json::Type::Array && !v->items.empty()) {
      v = &v->items[index(step, v->items.size() - 1, path)];
    } else {
      throw Error("json patch: \"" + path.text + "\" goes through a scalar or an empty array");
    }
  }
  return *v;
}

Json &CompiledPatch::at(Json &doc, Path &path) {
  if (path.steps.empty()) return doc;
  Json &parent = parent_of(doc, path);
  if (parent.type == Json::Type::Object) {
    Json *v = member(parent, path.steps.back());
    if (!v) throw Error("json patch: nothing at \"" + path.text + "\"");
    return *v;
  }
  if (parent.type != Json::Type::Array || parent.items.empty())
    throw Error("json patch: nothing at \"" + path.text + "\"");
  return parent.items[index(path.steps.back(), parent.items.size() - 1, path)];
}

void CompiledPatch::add(Json &doc, Path &path, Json value) {
  if (path.steps.empty()) {
    doc = std::move(value);
    return;
  }
  Json &parent = parent_of(doc, path);
  Step &last = path.steps.back();
  if (parent.type == Json::Type::Object) {
    if (Json *v = member(parent, last))
      *v = std::move(value);
    else
      parent.members.emplace_back(last.key, std::move(value));
  } else if (parent.type == Json::Type::Array) {
    size_t i = last.key == "-" ? parent.items.size() : index(last, parent.items.size(), path);
    parent.items.insert(parent.items.begin() + static_cast<std::ptrdiff_t>(i), std::move(value));
  } else {
    throw Error("json patch: cannot add into a scalar at \"" + path.text + "\"");
  }
}

Json CompiledPatch::remove(Json &doc, Path &path) {
  if (path.steps.empty()) throw Error("json patch: cannot remove the whole document");
  Json &parent = parent_of(doc, path);
  Step &last = path.steps.back();
  Json out;
  if (parent.type == Json::Type::Object) {
    if (Json *v = member(parent, last)) {
      out = std::move(*v);
      parent.members.erase(parent.members.begin() + static_cast<std::ptrdiff_t>(last.hint));
      return out;
    }
  } else if (parent.type == Json::Type::Array && !parent.items.empty()) {
    size_t i = index(last, parent.items.size() - 1, path);
    out = std::move(parent.items[i]);
    parent.items.erase(parent.items.begin() + static_cast<std::ptrdiff_t>(i));
    return out;
  }
  throw Error("json patch: nothing to remove at \"" + path.text + "\"");
}

void CompiledPatch::apply(Json &doc) {
  for (Op &op : ops_) {
    switch (op.kind) {
      case Kind::Add:
        add(doc, op.path, *op.value);
        break;
      case Kind::Remove:
        remove(doc, op.path);
        break;
      case Kind::Replace:
        at(doc, op.path) = *op.value;
        break;
      case Kind::Move: {
        Json v = remove(doc, op.from);
        add(doc, op.path, std::move(v));
        break;
      }
      case Kind::Copy: {
        Json v = at(doc, op.from);
        add(doc, op.path, std::move(v));
        break;
      }
      case Kind::Test:
        if (json_dump(at(doc, op.path)) != json_dump(*op.value))
          throw Error("json patch: test failed at \"" + op.path.text + "\"");
        break;
    }
  }
}

void apply_patch(Json &doc, const Json &patch) {
  CompiledPatch(patch).apply(doc);
}

}  // namespace ectosync
