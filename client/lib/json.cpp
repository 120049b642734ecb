#include "json.hpp"

#include <cstdlib>
#include <cstring>

namespace json {

Value *Value::member(std::string_view key) {
  for (auto &[k, v] : members)
    if (k == key) return &v;
  return nullptr;
}

const Value *Value::member(std::string_view key) const {
  return const_cast<Value *>(this)->member(key);
}

namespace {

class Parser {
 public:
  explicit Parser(std::string_view text) : s_(text) {}

  Value document() {
    Value v = value(0);
    space();
    if (i_ != s_.size()) fail("text after the value");
    return v;
  }

 private:
  [[noreturn]] void fail(const char *what) {
    throw Error(std::string("json: ") + what + " at offset " + std::to_string(i_));
  }
  void space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      i_++;
  }
  bool eat(char c) {
    space();
    if (i_ < s_.size() && s_[i_] == c) {
      i_++;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!eat(c)) fail((std::string("expected '") + c + "'").c_str());
  }
  bool word(const char *w) {
    size_t n = std::strlen(w);
    if (s_.substr(i_, n) != w) return false;
    i_ += n;
    return true;
  }

  Value value(int depth) {
    if (depth > 512) fail("nesting too deep");
    space();
    if (i_ >= s_.size()) fail("unexpected end");
    Value v;
    char c = s_[i_];
    if (c == '{') {
      i_++;
      v.type = Value::Type::Object;
      if (eat('}')) return v;
      do {
        space();
        std::string key = string();
        expect(':');
        v.members.emplace_back(std::move(key), value(depth + 1));
      } while (eat(','));
      expect('}');
    } else if (c == '[') {
      i_++;
      v.type = Value::Type::Array;
      if (eat(']')) return v;
      do v.items.push_back(value(depth + 1));
      while (eat(','));
      expect(']');
    } else if (c == '"') {
      v.type = Value::Type::String;
      v.text = string();
    } else if (word("true")) {
      v.type = Value::Type::Bool;
      v.boolean = true;
    } else if (word("false")) {
      v.type = Value::Type::Bool;
    } else if (word("null")) {
    } else {
      v.type = Value::Type::Number;
      v.text = number();
    }
    return v;
  }

  std::string number() {
    size_t start = i_;
    if (i_ < s_.size() && s_[i_] == '-') i_++;
    auto digits = [&] {
      size_t from = i_;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') i_++;
      if (i_ == from) fail("expected a digit");
    };
    digits();
    if (i_ < s_.size() && s_[i_] == '.') {
      i_++;
      digits();
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      i_++;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) i_++;
      digits();
    }
    return std::string(s_.substr(start, i_ - start));
  }

  unsigned hex4() {
    if (i_ + 4 > s_.size()) fail("short \\u escape");
    unsigned u = 0;
    for (int k = 0; k < 4; k++) {
      char h = s_[i_++];
      u <<= 4;
      if (h >= '0' && h <= '9')
        u |= h - '0';
      else if (h >= 'a' && h <= 'f')
        u |= h - 'a' + 10;
      else if (h >= 'A' && h <= 'F')
        u |= h - 'A' + 10;
      else
        fail("bad \\u escape");
    }
    return u;
  }

  static void utf8(std::string &out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  std::string string() {
    if (i_ >= s_.size() || s_[i_] != '"') fail("expected a string");
    i_++;
    std::string out;
    for (;;) {
      if (i_ >= s_.size()) fail("unterminated string");
      char c = s_[i_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in a string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= s_.size()) fail("unterminated escape");
      char e = s_[i_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out += e;
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00 && s_.substr(i_, 2) == "\\u") {
            i_ += 2;
            unsigned low = hex4();
            if (low < 0xDC00 || low > 0xDFFF) fail("bad surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          utf8(out, cp);
          break;
        }
        default:
          fail("bad escape");
      }
    }
  }

  std::string_view s_;
  size_t i_ = 0;
};

void dump_string(const std::string &s, std::string &out) {
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

void dump_to(const Value &v, std::string &out) {
  switch (v.type) {
    case Value::Type::Null:
      out += "null";
      break;
    case Value::Type::Bool:
      out += v.boolean ? "true" : "false";
      break;
    case Value::Type::Number:
      out += v.text;
      break;
    case Value::Type::String:
      dump_string(v.text, out);
      break;
    case Value::Type::Array:
      out += '[';
      for (size_t i = 0; i < v.items.size(); i++) {
        if (i) out += ',';
        dump_to(v.items[i], out);
      }
      out += ']';
      break;
    case Value::Type::Object:
      out += '{';
      for (size_t i = 0; i < v.members.size(); i++) {
        if (i) out += ',';
        dump_string(v.members[i].first, out);
        out += ':';
        dump_to(v.members[i].second, out);
      }
      out += '}';
      break;
  }
}

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
    if (v->is_object()) {
      v = v->member(tokens[t]);
      if (!v) throw Error("json patch: no member \"" + tokens[t] + "\" on \"" + path + "\"");
    } else if (v->is_array() && !v->items.empty()) {
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
  if (parent.is_object()) {
    Value *v = parent.member(tokens.back());
    if (!v) throw Error("json patch: nothing at \"" + path + "\"");
    return *v;
  }
  if (!parent.is_array() || parent.items.empty())
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
  if (parent.is_object()) {
    if (Value *v = parent.member(tokens.back()))
      *v = std::move(value);
    else
      parent.members.emplace_back(tokens.back(), std::move(value));
  } else if (parent.is_array()) {
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
  if (parent.is_object()) {
    for (auto it = parent.members.begin(); it != parent.members.end(); ++it) {
      if (it->first == tokens.back()) {
        out = std::move(it->second);
        parent.members.erase(it);
        return out;
      }
    }
  } else if (parent.is_array() && !parent.items.empty()) {
    size_t index = array_index(tokens.back(), parent.items.size() - 1, path);
    out = std::move(parent.items[index]);
    parent.items.erase(parent.items.begin() + static_cast<std::ptrdiff_t>(index));
    return out;
  }
  throw Error("json patch: nothing to remove at \"" + path + "\"");
}

const std::string &member_text(const Value &op, const char *name) {
  const Value *v = op.member(name);
  if (!v || v->type != Value::Type::String)
    throw Error(std::string("json patch: an operation without a string \"") + name + "\"");
  return v->text;
}

const Value &member_value(const Value &op) {
  const Value *v = op.member("value");
  if (!v) throw Error("json patch: an operation without \"value\"");
  return *v;
}

}  // namespace

Value parse(std::string_view text) {
  return Parser(text).document();
}

std::string dump(const Value &v) {
  std::string out;
  dump_to(v, out);
  return out;
}

void apply_patch(Value &doc, const Value &patch) {
  if (!patch.is_array()) throw Error("json patch: not an array of operations");
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
      if (dump(at(doc, path)) != dump(member_value(op)))
        throw Error("json patch: test failed at \"" + path + "\"");
    } else {
      throw Error("json patch: unknown operation \"" + name + "\"");
    }
  }
}

}  // namespace json
