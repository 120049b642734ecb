/*
 * json.cpp: the tiny JSON tree (see json.hpp).
 */
#include "core/json.hpp"

#include <cstdio>

namespace ectosync {

JsonError::JsonError(const std::string &what, size_t character)
    : std::runtime_error(what), character(character) {}

const Json *Json::find(std::string_view key) const {
  for (const auto &member : members)
    if (member.first == key) return &member.second;
  return nullptr;
}

Json *Json::find(std::string_view key) {
  for (auto &member : members)
    if (member.first == key) return &member.second;
  return nullptr;
}

namespace {

constexpr int kMaxJsonDepth = 200;

/* A recursive-descent JSON parser over a string_view. */
class JsonParser {
 public:
  explicit JsonParser(std::string_view text) : text_(text) {}

  Json parse_document() {
    Json value = parse_value(0);
    skip_space();
    if (pos_ != text_.size()) fail("unexpected text after the value");
    return value;
  }

 private:
  [[noreturn]] void fail(const std::string &what) const { throw JsonError(what, pos_ + 1); }

  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r'))
      ++pos_;
  }

  bool eat(char c) {
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  bool eat_word(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  Json parse_value(int depth) {
    if (depth > kMaxJsonDepth) fail("nested too deeply");
    skip_space();
    if (pos_ >= text_.size()) fail("unexpected end of input");
    Json value;
    char c = text_[pos_];
    if (c == '{') return parse_object(depth);
    if (c == '[') return parse_array(depth);
    if (c == '"') {
      value.type = Json::Type::String;
      value.text = parse_string();
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      value.type = Json::Type::Number;
      value.text = parse_number();
    } else if (eat_word("true")) {
      value.type = Json::Type::Bool;
      value.boolean = true;
    } else if (eat_word("false")) {
      value.type = Json::Type::Bool;
    } else if (!eat_word("null")) {
      fail("unexpected character");
    }
    return value;
  }

  Json parse_array(int depth) {
    Json value;
    value.type = Json::Type::Array;
    ++pos_; /* '[' */
    if (eat(']')) return value;
    do {
      value.items.push_back(parse_value(depth + 1));
    } while (eat(','));
    if (!eat(']')) fail("expected ',' or ']'");
    return value;
  }

  Json parse_object(int depth) {
    Json value;
    value.type = Json::Type::Object;
    ++pos_; /* '{' */
    if (eat('}')) return value;
    do {
      skip_space();
      if (pos_ >= text_.size() || text_[pos_] != '"') fail("expected a string key");
      std::string key = parse_string();
      if (!eat(':')) fail("expected ':'");
      value.members.emplace_back(std::move(key), parse_value(depth + 1));
    } while (eat(','));
    if (!eat('}')) fail("expected ',' or '}'");
    return value;
  }

  std::string parse_number() {
    size_t start = pos_;
    while (pos_ < text_.size() &&
           std::string_view("+-0123456789.eE").find(text_[pos_]) != std::string_view::npos)
      ++pos_;
    return std::string(text_.substr(start, pos_ - start));
  }

  unsigned parse_hex4() {
    if (pos_ + 4 > text_.size()) fail("truncated \\u escape");
    unsigned code = 0;
    for (int i = 0; i < 4; ++i) {
      char h = text_[pos_++];
      code <<= 4;
      if (h >= '0' && h <= '9')
        code |= h - '0';
      else if (h >= 'a' && h <= 'f')
        code |= h - 'a' + 10;
      else if (h >= 'A' && h <= 'F')
        code |= h - 'A' + 10;
      else
        fail("bad \\u escape");
    }
    return code;
  }

  static void append_utf8(std::string &out, unsigned code) {
    if (code < 0x80) {
      out += static_cast<char>(code);
    } else if (code < 0x800) {
      out += static_cast<char>(0xC0 | (code >> 6));
      out += static_cast<char>(0x80 | (code & 0x3F));
    } else if (code < 0x10000) {
      out += static_cast<char>(0xE0 | (code >> 12));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (code >> 18));
      out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code & 0x3F));
    }
  }

  unsigned parse_escape_code() {
    unsigned code = parse_hex4();
    if (code >= 0xD800 && code < 0xDC00) { /* a surrogate pair */
      if (!eat_word("\\u")) fail("lone surrogate in \\u escape");
      unsigned low = parse_hex4();
      if (low < 0xDC00 || low > 0xDFFF) fail("bad surrogate pair");
      code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
    }
    return code;
  }

  std::string parse_string() {
    std::string out;
    ++pos_; /* '"' */
    while (true) {
      if (pos_ >= text_.size()) fail("unterminated string");
      char c = text_[pos_++];
      if (c == '"') return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= text_.size()) fail("unterminated string");
      char e = text_[pos_++];
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
        case 'u':
          append_utf8(out, parse_escape_code());
          break;
        default:
          fail("bad escape");
      }
    }
  }

  std::string_view text_;
  size_t pos_ = 0;
};

}  // namespace

Json parse_json(std::string_view text) {
  return JsonParser(text).parse_document();
}

std::string json_quote(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
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
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string json_dump(const Json &v) {
  switch (v.type) {
    case Json::Type::Null:
      return "null";
    case Json::Type::Bool:
      return v.boolean ? "true" : "false";
    case Json::Type::Number:
      return v.text;
    case Json::Type::String:
      return json_quote(v.text);
    case Json::Type::Array: {
      std::string out = "[";
      for (size_t i = 0; i < v.items.size(); i++) out += (i ? "," : "") + json_dump(v.items[i]);
      return out + "]";
    }
    case Json::Type::Object: {
      std::string out = "{";
      for (size_t i = 0; i < v.members.size(); i++)
        out +=
            (i ? "," : "") + json_quote(v.members[i].first) + ":" + json_dump(v.members[i].second);
      return out + "}";
    }
  }
  return "null";
}

}  // namespace ectosync
