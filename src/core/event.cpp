/*
 * event.cpp: encoding of captured changes, cache keys, event ids and
 * notification payloads.  Pure C++: unit-tested without a server.
 */
#include "core/event.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>

namespace ectosync {

const char *op_name(Op op) {
  switch (op) {
    case Op::Insert:
      return "INSERT";
    case Op::Update:
      return "UPDATE";
    case Op::Delete:
      return "DELETE";
    case Op::Reload:
      return "RELOAD";
  }
  return "?";
}

std::optional<Op> op_from_name(std::string_view name) {
  for (Op op : {Op::Insert, Op::Update, Op::Delete, Op::Reload})
    if (name == op_name(op)) return op;
  return std::nullopt;
}

std::string reload_reason(uint16_t why, const std::string &table, const std::string &event_id) {
  std::string of = table.empty() ? std::string("this database") : table;
  std::string text;
  auto add = [&](const std::string &reason) { text += (text.empty() ? "" : "; ") + reason; };
  if (why & kReloadBulk)
    add("A transaction changed more rows of " + of + " than ectosync.max_xact_events");
  if (why & kReloadTruncate) add("TRUNCATE of " + of);
  if (why & kReloadQueueFull)
    add("Changes of " + of + " found no room in the queue (ectosync.queue_size)");
  if (why & kReloadQueueShare)
    add("Changes of " + of +
        " found no room in their writer's share of the queue (ectosync.max_role_share)");
  if (why & kReloadFailed) add("The worker failed to read changed rows of " + of);
  if (why & kReloadLongValue)
    add("A changed row of " + of + " has a key or compared value longer than 64 kB");
  if (why & kReloadCapture) add("Capture of " + of + " started: earlier changes were not captured");
  if (why & kReloadUncaptured)
    add("Capture of " + of + " stopped or narrowed: a watch of it went or needs less");
  if (why & kReloadSchema) add("Schema change of " + of);
  if (why & kReloadPolicy) add("A table that row level security of " + of + " reads changed");
  if (why & kReloadSecurity) add("Row level security of " + of + " changed");
  if (why & kReloadRoles)
    add("Roles changed: their memberships or attributes decide what " + of +
        "'s row level security shows");
  if (text.empty()) add("Changes of " + of + " were not captured one by one");
  return text + " (RELOAD marker " + event_id + ").";
}

const ColumnChange *Event::column(int16_t attnum) const {
  for (const auto &c : columns)
    if (c.attnum == attnum) return &c;
  return nullptr;
}

std::vector<std::optional<std::string>> Event::old_pk() const {
  std::vector<std::optional<std::string>> pk;
  for (const auto &c : columns)
    if (c.is_pk && c.has_old) pk.push_back(c.old_value);
  return pk;
}

std::vector<std::optional<std::string>> Event::new_pk() const {
  std::vector<std::optional<std::string>> pk;
  for (const auto &c : columns)
    if (c.is_pk && c.has_new) pk.push_back(c.new_value);
  return pk;
}

/*
 * Column encoding: per column, int16 attnum, a flag byte, then for each of
 * old and new that is present and not NULL a uint16 length and the bytes.
 */
namespace {
enum : uint8_t { kPk = 1, kHasOld = 2, kHasNew = 4, kOldNull = 8, kNewNull = 16 };

template <typename T>
bool get(std::string_view &in, T &v) {
  if (in.size() < sizeof v) return false;
  std::memcpy(&v, in.data(), sizeof v);
  in.remove_prefix(sizeof v);
  return true;
}

template <typename T>
char *put(char *out, T v) {
  std::memcpy(out, &v, sizeof v);
  return out + sizeof v;
}

/* (buffer_event() makes a RELOAD marker of an event with a longer value) */
size_t clipped(size_t len) {
  return std::min<size_t>(len, kMaxEventValue);
}

char *put_value(char *out, const char *value, size_t len) {
  if (!value) return out;
  uint16_t n = static_cast<uint16_t>(clipped(len));
  out = put(out, n);
  std::memcpy(out, value, n);
  return out + n;
}

bool get_value(std::string_view &in, std::optional<std::string> &value) {
  uint16_t len;
  if (!get(in, len) || in.size() < len) return false;
  value.emplace(in.substr(0, len));
  in.remove_prefix(len);
  return true;
}
}  // namespace

size_t encoded_size(const RawColumn *columns, int count) noexcept {
  size_t size = sizeof(uint16_t);
  for (int i = 0; i < count; i++) {
    const RawColumn &c = columns[i];
    size += sizeof c.attnum + sizeof(uint8_t);
    if (c.has_old && c.old_value) size += sizeof(uint16_t) + clipped(c.old_len);
    if (c.has_new && c.new_value) size += sizeof(uint16_t) + clipped(c.new_len);
  }
  return size;
}

char *encode_raw_columns(const RawColumn *columns, int count, char *out) noexcept {
  out = put(out, static_cast<uint16_t>(count));
  for (int i = 0; i < count; i++) {
    const RawColumn &c = columns[i];
    uint8_t flags = (c.is_pk ? kPk : 0) | (c.has_old ? kHasOld : 0) | (c.has_new ? kHasNew : 0) |
                    (c.has_old && !c.old_value ? kOldNull : 0) |
                    (c.has_new && !c.new_value ? kNewNull : 0);
    out = put(out, c.attnum);
    out = put(out, flags);
    if (c.has_old) out = put_value(out, c.old_value, c.old_len);
    if (c.has_new) out = put_value(out, c.new_value, c.new_len);
  }
  return out;
}

void encode_columns(const std::vector<ColumnChange> &columns, std::string &out) {
  std::vector<RawColumn> raw(columns.size());
  for (size_t i = 0; i < columns.size(); i++) {
    const ColumnChange &c = columns[i];
    raw[i] = {c.attnum,
              c.is_pk,
              c.has_old,
              c.has_new,
              c.old_value ? c.old_value->data() : nullptr,
              c.new_value ? c.new_value->data() : nullptr,
              c.old_value ? c.old_value->size() : 0,
              c.new_value ? c.new_value->size() : 0};
  }
  size_t at = out.size();
  out.resize(at + encoded_size(raw.data(), static_cast<int>(raw.size())));
  encode_raw_columns(raw.data(), static_cast<int>(raw.size()), out.data() + at);
}

bool decode_columns(std::string_view in, std::vector<ColumnChange> &columns) {
  uint16_t count;
  columns.clear();
  if (!get(in, count)) return false;
  for (uint16_t i = 0; i < count; i++) {
    ColumnChange c;
    uint8_t flags;
    if (!get(in, c.attnum) || !get(in, flags)) return false;
    c.is_pk = flags & kPk;
    c.has_old = flags & kHasOld;
    c.has_new = flags & kHasNew;
    if (c.has_old && !(flags & kOldNull) && !get_value(in, c.old_value)) return false;
    if (c.has_new && !(flags & kNewNull) && !get_value(in, c.new_value)) return false;
    columns.push_back(std::move(c));
  }
  return in.empty();
}

std::string encode_key(const std::vector<std::optional<std::string>> &values,
                       const std::vector<KeyKind> &kinds) {
  std::string key;
  for (size_t i = 0; i < values.size(); i++) {
    if (!values[i]) {
      key += "N;";
      continue;
    }
    std::string_view text =
        i < kinds.size() ? canonical_key_text(kinds[i], *values[i]) : std::string_view(*values[i]);
    key += std::to_string(text.size());
    key += ':';
    key += text;
  }
  return key;
}

std::string format_event_id(uint64_t epoch, uint64_t seq) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%016" PRIx64 ":%" PRIu64, epoch, seq);
  return buf;
}

bool parse_event_id(std::string_view text, uint64_t &epoch, uint64_t &seq) {
  auto colon = text.find(':');
  if (colon != 16 || text.size() < 18 || text.size() > 16 + 1 + 20) return false;
  epoch = 0;
  for (char ch : text.substr(0, 16)) {
    int d = (ch >= '0' && ch <= '9') ? ch - '0' : (ch >= 'a' && ch <= 'f') ? ch - 'a' + 10 : -1;
    if (d < 0) return false;
    epoch = epoch << 4 | static_cast<uint64_t>(d);
  }
  seq = 0;
  for (char ch : text.substr(17)) {
    if (ch < '0' || ch > '9') return false;
    uint64_t next = seq * 10 + static_cast<uint64_t>(ch - '0');
    if (next / 10 != seq) return false; /* overflow */
    seq = next;
  }
  return seq > 0;
}

/* Table names are quoted JSON strings: escape what JSON requires. */
static void append_json_string(std::string &out, const std::string &s) {
  out += '"';
  for (unsigned char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += static_cast<char>(ch);
    } else if (ch < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", ch);
      out += buf;
    } else {
      out += static_cast<char>(ch);
    }
  }
  out += '"';
}

std::string format_payload(uint64_t epoch, uint64_t seq, const std::string &table, Op op) {
  std::string out = "{\"event\": \"" + format_event_id(epoch, seq) + "\", \"table\": ";
  append_json_string(out, table);
  out += ", \"op\": \"";
  out += op_name(op);
  out += "\"}";
  return out;
}

/*
 * A deliberately small reader for the payloads format_payload() writes:
 * a flat JSON object of string members.  Anything else is refused.
 */
namespace {
struct PayloadReader {
  std::string_view in;
  size_t pos = 0;

  void skip_ws() {
    while (pos < in.size() &&
           (in[pos] == ' ' || in[pos] == '\n' || in[pos] == '\t' || in[pos] == '\r'))
      pos++;
  }
  bool eat(char ch) {
    skip_ws();
    if (pos < in.size() && in[pos] == ch) {
      pos++;
      return true;
    }
    return false;
  }
  bool string(std::string &out) {
    if (!eat('"')) return false;
    out.clear();
    while (pos < in.size() && in[pos] != '"') {
      char ch = in[pos++];
      if (ch == '\\') {
        if (pos >= in.size()) return false;
        char esc = in[pos++];
        if (esc == 'u') {
          if (pos + 4 > in.size()) return false;
          unsigned code = 0;
          for (int i = 0; i < 4; i++) {
            char h = in[pos++];
            int d = (h >= '0' && h <= '9')   ? h - '0'
                    : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                    : (h >= 'A' && h <= 'F') ? h - 'A' + 10
                                             : -1;
            if (d < 0) return false;
            code = code << 4 | static_cast<unsigned>(d);
          }
          if (code >= 0x80) return false; /* only what format_payload writes */
          out += static_cast<char>(code);
        } else if (esc == '"' || esc == '\\' || esc == '/') {
          out += esc;
        } else {
          return false;
        }
      } else {
        out += ch;
      }
    }
    return eat('"');
  }
};
}  // namespace

bool parse_payload(std::string_view text, EventRef &ref) {
  ref = EventRef{};
  PayloadReader r{text};
  r.skip_ws();
  if (r.pos < text.size() && text[r.pos] != '{')
    return parse_event_id(text.substr(r.pos), ref.epoch, ref.seq);
  if (!r.eat('{')) return false;
  bool have_event = false;
  do {
    std::string key, value;
    if (!r.string(key) || !r.eat(':') || !r.string(value)) return false;
    if (key == "event") {
      if (!parse_event_id(value, ref.epoch, ref.seq)) return false;
      have_event = true;
    } else if (key == "table") {
      ref.table = value;
    } else if (key == "op") {
      ref.op = op_from_name(value);
      if (!ref.op) return false;
    } else {
      return false;
    }
  } while (r.eat(','));
  if (!r.eat('}')) return false;
  r.skip_ws();
  return have_event && r.pos == text.size();
}

std::string channel_name(uint32_t relid) {
  return "ectosync_" + std::to_string(relid);
}

}  // namespace ectosync
