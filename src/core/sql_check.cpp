/*
 * sql_check.cpp: a small SQL lexer and the check of sql_check.hpp.  It
 * errs on the side of findings: what it cannot tell apart from a name
 * looked up through search_path is reported, and generated SQL is written
 * so that it is not.
 */
#include "core/sql_check.hpp"

#include <algorithm>

#include <cctype>
#include <cstring>
#include <set>

namespace ectosync {

namespace {

enum class Tok {
  Word,    /* bare identifier or keyword; text lower-cased */
  Quoted,  /* "double-quoted identifier"; text as written */
  Op,      /* a run of operator characters */
  Punct,   /* ( ) [ ] , ; . : or :: */
  Literal, /* string constant, number or $n parameter */
  Bad,     /* unterminated quote or comment */
};

struct Token {
  Tok kind;
  std::string text;
  size_t pos;          /* byte offset in the statement */
  bool string = false; /* a string constant (Literal) */
};

bool ident_start(unsigned char c) {
  return std::isalpha(c) || c == '_' || c >= 0x80;
}
bool ident_char(unsigned char c) {
  return ident_start(c) || std::isdigit(c) || c == '$';
}
bool op_char(char c) {
  return std::string_view("+-*/<>=~!@#%^&|`?").find(c) != std::string_view::npos;
}

class Lexer {
 public:
  explicit Lexer(std::string_view sql) : s_(sql) {}

  std::vector<Token> run() {
    std::vector<Token> out;
    while (skip_space_and_comments(out), i_ < s_.size()) out.push_back(next());
    return out;
  }

  /* The block comments that run() went past, whole. */
  const std::vector<std::string_view> &comments() const { return comments_; }

 private:
  char at(size_t k) const { return k < s_.size() ? s_[k] : '\0'; }

  void skip_space_and_comments(std::vector<Token> &out) {
    for (;;) {
      while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
      if (at(i_) == '-' && at(i_ + 1) == '-') {
        while (i_ < s_.size() && s_[i_] != '\n') ++i_;
      } else if (at(i_) == '/' && at(i_ + 1) == '*') {
        size_t start = i_;
        int depth = 0;
        while (i_ < s_.size()) {
          if (at(i_) == '/' && at(i_ + 1) == '*') {
            ++depth;
            i_ += 2;
          } else if (at(i_) == '*' && at(i_ + 1) == '/') {
            i_ += 2;
            if (--depth == 0) break;
          } else {
            ++i_;
          }
        }
        if (depth != 0)
          out.push_back({Tok::Bad, "unterminated comment", start});
        else
          comments_.push_back(s_.substr(start, i_ - start));
      } else {
        return;
      }
    }
  }

  /* '...' from i_ (at the quote); backslash escapes too when escapes. */
  Token string_constant(size_t start, bool escapes) {
    ++i_;
    while (i_ < s_.size()) {
      char c = s_[i_];
      if (escapes && c == '\\') {
        i_ += 2;
      } else if (c == '\'') {
        if (at(i_ + 1) == '\'') {
          i_ += 2;
        } else {
          ++i_;
          return {Tok::Literal, "'", start, true};
        }
      } else {
        ++i_;
      }
    }
    return {Tok::Bad, "unterminated string constant", start};
  }

  /* "..." from i_ (at the quote), "" an escaped quote. */
  Token quoted_identifier(size_t start) {
    std::string name;
    ++i_;
    while (i_ < s_.size()) {
      if (s_[i_] == '"') {
        if (at(i_ + 1) != '"') {
          ++i_;
          return {Tok::Quoted, name, start};
        }
        ++i_;
      }
      name += s_[i_++];
    }
    return {Tok::Bad, "unterminated quoted identifier", start};
  }

  Token next() {
    size_t start = i_;
    char c = s_[i_];
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '\'') return string_constant(start, false);
    if (c == '"') return quoted_identifier(start);
    if ((c == 'e' || c == 'E') && at(i_ + 1) == '\'') {
      ++i_;
      return string_constant(start, true);
    }
    if (std::strchr("bBxXnN", c) && at(i_ + 1) == '\'') {
      ++i_;
      return string_constant(start, false);
    }
    if ((c == 'u' || c == 'U') && at(i_ + 1) == '&' && (at(i_ + 2) == '\'' || at(i_ + 2) == '"')) {
      i_ += 2;
      return at(i_) == '\'' ? string_constant(start, false) : quoted_identifier(start);
    }
    if (ident_start(u)) {
      std::string word;
      while (i_ < s_.size() && ident_char(static_cast<unsigned char>(s_[i_])))
        word += static_cast<char>(std::tolower(static_cast<unsigned char>(s_[i_++])));
      return {Tok::Word, word, start};
    }
    if (std::isdigit(u) || (c == '.' && std::isdigit(static_cast<unsigned char>(at(i_ + 1))))) {
      while (std::isalnum(static_cast<unsigned char>(at(i_))) || at(i_) == '.' || at(i_) == '_') {
        char d = s_[i_++];
        if ((d == 'e' || d == 'E') && (at(i_) == '+' || at(i_) == '-')) ++i_;
      }
      return {Tok::Literal, "0", start};
    }
    if (c == '$') {
      if (std::isdigit(static_cast<unsigned char>(at(i_ + 1)))) {
        ++i_;
        while (std::isdigit(static_cast<unsigned char>(at(i_)))) ++i_;
        return {Tok::Literal, "$", start};
      }
      /* $tag$ ... $tag$ */
      size_t k = i_ + 1;
      while (k < s_.size() && s_[k] != '$' && ident_char(static_cast<unsigned char>(s_[k]))) ++k;
      if (at(k) == '$') {
        std::string_view tag = s_.substr(i_, k + 1 - i_);
        size_t end = s_.find(tag, k + 1);
        if (end == std::string_view::npos) {
          i_ = s_.size();
          return {Tok::Bad, "unterminated dollar-quoted string", start};
        }
        i_ = end + tag.size();
        return {Tok::Literal, "'", start, true};
      }
    }
    if (c == ':' && at(i_ + 1) == ':') {
      i_ += 2;
      return {Tok::Punct, "::", start};
    }
    if (op_char(c)) {
      while (i_ < s_.size() && op_char(s_[i_]) && !(s_[i_] == '-' && at(i_ + 1) == '-') &&
             !(s_[i_] == '/' && at(i_ + 1) == '*'))
        ++i_;
      return {Tok::Op, std::string(s_.substr(start, i_ - start)), start};
    }
    ++i_;
    return {Tok::Punct, std::string(1, c), start};
  }

  std::string_view s_;
  size_t i_ = 0;
  std::vector<std::string_view> comments_;
};

/* Keywords after which "(" opens no function call. */
const std::set<std::string> kParenKeywords = {
    "select",   "from",  "where",  "and",     "or",       "not",       "exists",      "values",
    "coalesce", "cast",  "rows",   "lateral", "on",       "conflict",  "any",         "all",
    "some",     "array", "row",    "over",    "filter",   "join",      "using",       "as",
    "by",       "when",  "then",   "else",    "distinct", "limit",     "offset",      "returning",
    "having",   "group", "within", "with",    "union",    "intersect", "except",      "set",
    "is",       "case",  "end",    "into",    "do",       "recursive", "materialized"};

/* Keywords a string constant may follow without being a typed literal (type 'text'). */
const std::set<std::string> kKeywords = {
    "select", "from",    "where",     "and",      "or",       "not",     "values",   "on",
    "as",     "by",      "when",      "then",     "else",     "is",      "set",      "returning",
    "having", "limit",   "offset",    "distinct", "escape",   "default", "in",       "like",
    "ilike",  "similar", "to",        "between",  "collate",  "any",     "all",      "some",
    "union",  "except",  "intersect", "all",      "using",    "with",    "null",     "true",
    "false",  "case",    "end",       "array",    "row",      "exists",  "do",       "update",
    "insert", "into",    "delete",    "table",    "function", "execute", "procedure"};

/* Type names that the grammar itself maps to pg_catalog's types. */
const std::set<std::string> kKeywordTypes = {
    "int",      "integer", "smallint", "bigint",    "real",      "float",   "numeric",
    "decimal",  "dec",     "boolean",  "character", "char",      "varchar", "nchar",
    "national", "bit",     "double",   "time",      "timestamp", "interval"};

const std::set<std::string> kIntervalFields = {"year",   "month",  "day", "hour",
                                               "minute", "second", "to"};

std::string upper(std::string word) {
  for (char &c : word) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return word;
}

std::string quoted(const Token &t) {
  return t.kind == Tok::Quoted ? "\"" + t.text + "\"" : t.text;
}

class Checker {
 public:
  explicit Checker(std::vector<Token> tokens) : t_(std::move(tokens)) {}

  std::vector<std::string> run() {
    size_t i = 0;
    while (i < t_.size()) i = step(i);
    return std::move(findings_);
  }

 private:
  struct Paren {
    bool cast = false;
  };

  const Token *tok(size_t k) const { return k < t_.size() ? &t_[k] : nullptr; }
  bool is(size_t k, Tok kind, std::string_view text) const {
    const Token *t = tok(k);
    return t && t->kind == kind && t->text == text;
  }
  bool word(size_t k, std::string_view text) const { return is(k, Tok::Word, text); }
  bool punct(size_t k, std::string_view text) const { return is(k, Tok::Punct, text); }
  bool name_token(size_t k) const {
    const Token *t = tok(k);
    return t && (t->kind == Tok::Word || t->kind == Tok::Quoted);
  }

  void find(size_t k, const std::string &what) {
    findings_.push_back(what + " at character " + std::to_string(t_[k].pos + 1));
  }

  /* A dotted name from k: a . b . c (or a.*); returns the index after it. */
  size_t name_end(size_t k, int &parts) const {
    parts = 1;
    ++k;
    while (punct(k, ".") && (name_token(k + 1) || is(k + 1, Tok::Op, "*"))) {
      ++parts;
      k += 2;
    }
    return k;
  }

  /* Skips a balanced ( ... ) or [ ... ] from k; returns the index after it. */
  size_t skip_group(size_t k) const {
    int depth = 0;
    for (; k < t_.size(); ++k) {
      if (punct(k, "(") || punct(k, "[")) ++depth;
      if (punct(k, ")") || punct(k, "]")) {
        if (--depth == 0) return k + 1;
      }
    }
    return k;
  }

  /* A type name from k (after :: or CAST's AS); returns the index after it. */
  size_t type_name(size_t k) {
    if (!name_token(k)) return k;
    int parts;
    size_t end = name_end(k, parts);
    if (parts == 1 && t_[k].kind == Tok::Word && kKeywordTypes.count(t_[k].text)) {
      const std::string &w = t_[k].text;
      end = k + 1;
      if (w == "double" && word(end, "precision")) ++end;
      if (w == "national" && (word(end, "character") || word(end, "char"))) ++end;
      if (word(end, "varying")) ++end;
      if (w == "interval")
        while (tok(end) && tok(end)->kind == Tok::Word && kIntervalFields.count(tok(end)->text))
          ++end;
      if (punct(end, "(")) end = skip_group(end);
      if ((w == "time" || w == "timestamp") && (word(end, "with") || word(end, "without")) &&
          word(end + 1, "time") && word(end + 2, "zone"))
        end += 3;
    } else {
      if (parts == 1) find(k, "type " + quoted(t_[k]) + " not schema-qualified");
      if (punct(end, "(")) end = skip_group(end);
    }
    for (;;) {
      if (punct(end, "[")) {
        end = skip_group(end);
      } else if (word(end, "array")) {
        ++end;
        if (punct(end, "[")) end = skip_group(end);
      } else {
        return end;
      }
    }
  }

  /* OPERATOR(schema.op) from k (at OPERATOR); returns the index after it. */
  size_t operator_name(size_t k) {
    size_t m = k + 2; /* after "(" */
    int qualifiers = 0;
    while (name_token(m) && punct(m + 1, ".")) {
      ++qualifiers;
      m += 2;
    }
    const Token *op = tok(m);
    if (!op || op->kind != Tok::Op || !punct(m + 1, ")")) {
      find(k, "OPERATOR(...) not of the form OPERATOR(schema.op)");
      return k + 2;
    }
    if (qualifiers == 0) find(k, "OPERATOR(" + op->text + ") not schema-qualified");
    return m + 2;
  }

  bool in_set_list() const { return set_depth_ >= 0 && set_depth_ == depth(); }
  int depth() const { return static_cast<int>(parens_.size()); }

  size_t step(size_t i) {
    const Token &t = t_[i];
    switch (t.kind) {
      case Tok::Bad:
        find(i, t.text);
        return i + 1;
      case Tok::Literal:
        if (in_set_list()) expect_assign_ = false;
        return i + 1;
      case Tok::Op:
        return op(i);
      case Tok::Punct:
        return punctuation(i);
      case Tok::Word:
      case Tok::Quoted:
        return name(i);
    }
    return i + 1;
  }

  size_t op(size_t i) {
    const Token &t = t_[i];
    if (t.text == "*" && i > 0 &&
        (punct(i - 1, ".") || punct(i - 1, "(") || punct(i - 1, ",") || word(i - 1, "select")))
      return i + 1;
    if (t.text == "=" && in_set_list() && expect_assign_) {
      expect_assign_ = false;
      return i + 1;
    }
    find(i, "operator " + t.text + " not written OPERATOR(schema." + t.text + ")");
    if (in_set_list()) expect_assign_ = false;
    return i + 1;
  }

  size_t punctuation(size_t i) {
    const std::string &p = t_[i].text;
    if (p == "::") return type_name(i + 1);
    if (p == "(") {
      parens_.push_back(Paren{pending_cast_});
      pending_cast_ = false;
    } else if (p == ")") {
      if (!parens_.empty()) parens_.pop_back();
      if (set_depth_ > depth()) set_depth_ = -1;
    } else if (p == ";") {
      set_depth_ = -1;
    } else if (p == "," && in_set_list()) {
      expect_assign_ = true;
      return i + 1;
    }
    if (in_set_list() && p != "[" && p != "]" && p != ".") expect_assign_ = false;
    return i + 1;
  }

  size_t name(size_t i) {
    const Token &t = t_[i];
    int parts;
    size_t end = name_end(i, parts);
    bool bare = parts == 1 && t.kind == Tok::Word;
    const std::string &w = t.text;
    if (bare) {
      if (w == "operator" && punct(i + 1, "(")) return operator_name(i);
      if (w == "collate") {
        if (!name_token(i + 1)) return i + 1;
        int collation_parts;
        size_t after = name_end(i + 1, collation_parts);
        if (collation_parts == 1)
          find(i + 1, "collation " + quoted(t_[i + 1]) + " not schema-qualified");
        return after;
      }
      if (w == "as" && !parens_.empty() && parens_.back().cast) return type_name(i + 1);
      if (w == "as" && name_token(i + 1) && punct(i + 2, "(")) {
        /* AS alias(column, ...) */
        return i + 2;
      }
      if (w == "into" && name_token(i + 1)) {
        int table_parts;
        return name_end(i + 1, table_parts); /* INSERT INTO table (columns) */
      }
      if (w == "cast" && punct(i + 1, "(")) pending_cast_ = true;
      if (w == "in" && punct(i + 1, "(")) find(i, "IN (...) finds = by name");
      if (w == "like" || w == "ilike" || w == "similar" || w == "between" || w == "nullif" ||
          w == "greatest" || w == "least")
        find(i, upper(w) + " finds an operator by name");
      if (w == "is" && (word(i + 1, "distinct") || (word(i + 1, "not") && word(i + 2, "distinct"))))
        find(i, "IS DISTINCT FROM finds = by name");
      if (w == "case" && !word(i + 1, "when")) find(i, "a simple CASE finds = by name");
      if (w == "set") {
        set_depth_ = depth();
        expect_assign_ = true;
        return i + 1;
      }
      if (in_set_list() && (w == "where" || w == "from" || w == "returning")) set_depth_ = -1;
    }
    if (punct(end, "(")) {
      if (parts == 1 && !(bare && kParenKeywords.count(w)))
        find(i, "function " + quoted(t) + " not schema-qualified");
    } else if (tok(end) && tok(end)->string && parts == 1 &&
               !(bare && (kKeywords.count(w) || kKeywordTypes.count(w)))) {
      find(i, "type " + quoted(t) + " of a constant not schema-qualified");
    }
    return end;
  }

  std::vector<Token> t_;
  std::vector<Paren> parens_;
  bool pending_cast_ = false;
  int set_depth_ = -1; /* depth of the SET list being read; -1: none */
  bool expect_assign_ = false;
  std::vector<std::string> findings_;
};

}  // namespace

std::vector<std::string> unqualified_names(std::string_view sql) {
  return Checker(Lexer(sql).run()).run();
}

constexpr std::string_view kTableMarker = "/*ectosync:";

std::string table_marker(uint32_t relid) {
  return std::string(kTableMarker) + std::to_string(relid) + "*/";
}

std::vector<uint32_t> table_markers(std::string_view sql) {
  Lexer lexer(sql);
  (void)lexer.run();
  std::vector<uint32_t> out;
  for (std::string_view c : lexer.comments()) {
    if (c.substr(0, kTableMarker.size()) != kTableMarker) continue;
    std::string_view digits = c.substr(kTableMarker.size(), c.size() - kTableMarker.size() - 2);
    if (digits.empty() || digits.size() > 10 ||
        digits.find_first_not_of("0123456789") != std::string_view::npos)
      continue;
    uint64_t relid = std::stoull(std::string(digits));
    if (relid != 0 && relid <= UINT32_MAX && std::find(out.begin(), out.end(), relid) == out.end())
      out.push_back(static_cast<uint32_t>(relid));
  }
  return out;
}

}  // namespace ectosync
