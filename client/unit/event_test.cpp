// Unit tests of the server-free event code: the binary encoding of captured
// key columns, cache keys, event ids and notification payloads.
#include <gtest/gtest.h>

#include "core/event.hpp"

using namespace ectosync;

TEST(EventEncoding, RoundTripsEveryKindOfValue) {
  std::vector<ColumnChange> columns(4);
  columns[0] = {1, true, true, true, "42", "43"};                    // pk changed
  columns[1] = {2, false, true, true, std::nullopt, "7"};            // NULL -> 7
  columns[2] = {3, false, false, true, std::nullopt, ""};            // INSERT, empty string
  columns[3] = {5, false, true, false, "it's \"x\"", std::nullopt};  // DELETE
  std::string body;
  encode_columns(columns, body);
  std::vector<ColumnChange> decoded;
  ASSERT_TRUE(decode_columns(body, decoded));
  ASSERT_EQ(decoded.size(), columns.size());
  for (size_t i = 0; i < columns.size(); i++) {
    EXPECT_EQ(decoded[i].attnum, columns[i].attnum);
    EXPECT_EQ(decoded[i].is_pk, columns[i].is_pk);
    EXPECT_EQ(decoded[i].has_old, columns[i].has_old);
    EXPECT_EQ(decoded[i].has_new, columns[i].has_new);
    EXPECT_EQ(decoded[i].old_value, columns[i].old_value);
    EXPECT_EQ(decoded[i].new_value, columns[i].new_value);
  }
}

TEST(EventEncoding, RawColumnsEncodeInPlaceWhatDecodeReads) {
  // The capture trigger's form: pointers and lengths, nullptr for NULL,
  // written into memory sized by encoded_size().
  std::string wide(70000, 'w');  // longer than a key may be: cut to 64 kB
  RawColumn raw[3] = {{1, true, true, true, "42", "43", 2, 2},
                      {2, false, true, true, nullptr, "7", 0, 1},
                      {7, false, true, false, wide.data(), nullptr, wide.size(), 0}};
  std::string body(encoded_size(raw, 3), '\0');
  char *end = encode_raw_columns(raw, 3, body.data());
  EXPECT_EQ(end, body.data() + body.size());
  std::vector<ColumnChange> decoded;
  ASSERT_TRUE(decode_columns(body, decoded));
  ASSERT_EQ(decoded.size(), 3u);
  EXPECT_EQ(decoded[0].old_value, "42");
  EXPECT_EQ(decoded[0].new_value, "43");
  EXPECT_TRUE(decoded[0].is_pk);
  EXPECT_EQ(decoded[1].old_value, std::nullopt);
  EXPECT_TRUE(decoded[1].has_old);
  EXPECT_EQ(decoded[1].new_value, "7");
  EXPECT_EQ(decoded[2].attnum, 7);
  EXPECT_FALSE(decoded[2].has_new);
  EXPECT_EQ(decoded[2].old_value, wide.substr(0, 65535));

  // encode_columns() is the same format.
  std::string via_columns;
  encode_columns(decoded, via_columns);
  EXPECT_EQ(via_columns, body);
}

TEST(EventEncoding, RejectsTruncatedAndTrailingBytes) {
  std::vector<ColumnChange> columns = {{1, true, false, true, std::nullopt, "abc"}};
  std::string body;
  encode_columns(columns, body);
  std::vector<ColumnChange> decoded;
  for (size_t len = 0; len < body.size(); len++)
    EXPECT_FALSE(decode_columns(std::string_view(body).substr(0, len), decoded)) << len;
  EXPECT_FALSE(decode_columns(body + "x", decoded));
}

TEST(EventPk, OldAndNewKeysInPkOrder) {
  Event event;
  event.columns = {{1, true, true, true, "1", "2"},
                   {4, false, true, true, "9", "9"},
                   {2, true, true, true, "a", "a"}};
  using Key = std::vector<std::optional<std::string>>;
  EXPECT_EQ(event.old_pk(), (Key{"1", "a"}));
  EXPECT_EQ(event.new_pk(), (Key{"2", "a"}));
  ASSERT_NE(event.column(4), nullptr);
  EXPECT_EQ(event.column(4)->new_value, "9");
  EXPECT_EQ(event.column(3), nullptr);
}

TEST(CacheKey, ValuesCannotRunIntoEachOther) {
  using Key = std::vector<std::optional<std::string>>;
  std::vector<KeyKind> text2{KeyKind::Text, KeyKind::Text};
  EXPECT_NE(encode_key(Key{"1:2", "3"}, text2), encode_key(Key{"1", "2:3"}, text2));
  EXPECT_NE(encode_key(Key{"ab", ""}, text2), encode_key(Key{"a", "b"}, text2));
  EXPECT_NE(encode_key(Key{std::nullopt}, text2), encode_key(Key{"N;"}, text2));
  EXPECT_EQ(encode_key(Key{"42"}, text2), encode_key(Key{"42"}, text2));
}

/* One key per value whatever way its type's = lets it be written: a row
 * read through a foreign key written "2.500" is the row of key "2.5". */
TEST(CacheKey, OneKeyPerValue) {
  using Key = std::vector<std::optional<std::string>>;
  std::vector<KeyKind> number{KeyKind::Number}, chars{KeyKind::Char}, text{KeyKind::Text};
  EXPECT_EQ(encode_key(Key{"2.500"}, number), encode_key(Key{"2.5"}, number));
  EXPECT_EQ(encode_key(Key{"3.000"}, number), encode_key(Key{"3"}, number));
  EXPECT_EQ(encode_key(Key{"0.0"}, number), encode_key(Key{"0"}, number));
  EXPECT_NE(encode_key(Key{"30"}, number), encode_key(Key{"3"}, number));
  EXPECT_NE(encode_key(Key{"2.05"}, number), encode_key(Key{"2.5"}, number));
  EXPECT_EQ(encode_key(Key{"100"}, number), encode_key(Key{"100"}, number));
  EXPECT_EQ(encode_key(Key{"ab "}, chars), encode_key(Key{"ab   "}, chars));
  EXPECT_NE(encode_key(Key{" ab"}, chars), encode_key(Key{"ab"}, chars));
  /* text keeps every byte: "a " and "a" are two values */
  EXPECT_NE(encode_key(Key{"a "}, text), encode_key(Key{"a"}, text));
  EXPECT_NE(encode_key(Key{"2.50"}, text), encode_key(Key{"2.5"}, text));
}

TEST(EventId, FormatsAndParses) {
  std::string id = format_event_id(0x5f1c0e7a9b3d2c41ULL, 42);
  EXPECT_EQ(id, "5f1c0e7a9b3d2c41:42");
  uint64_t epoch = 0, seq = 0;
  ASSERT_TRUE(parse_event_id(id, epoch, seq));
  EXPECT_EQ(epoch, 0x5f1c0e7a9b3d2c41ULL);
  EXPECT_EQ(seq, 42u);
}

TEST(EventId, RejectsForgeries) {
  uint64_t epoch, seq;
  for (const char *bad : {"", "42", "5f1c0e7a9b3d2c41", "5f1c0e7a9b3d2c41:", "5f1c0e7a9b3d2c41:0",
                          "5F1C0E7A9B3D2C41:1", "5f1c0e7a9b3d2c4:1", "5f1c0e7a9b3d2c41:1x",
                          "5f1c0e7a9b3d2c41:-1", "5f1c0e7a9b3d2c41:99999999999999999999999"})
    EXPECT_FALSE(parse_event_id(bad, epoch, seq)) << bad;
}

TEST(Payload, RoundTripsWithQuotedTableNames) {
  std::string payload = format_payload(1, 7, "public.Weird \"Table\"", Op::Delete);
  EXPECT_EQ(payload,
            "{\"event\": \"0000000000000001:7\", \"table\": \"public.Weird \\\"Table\\\"\", "
            "\"op\": \"DELETE\"}");
  EventRef ref;
  ASSERT_TRUE(parse_payload(payload, ref));
  EXPECT_EQ(ref.epoch, 1u);
  EXPECT_EQ(ref.seq, 7u);
  EXPECT_EQ(ref.table, "public.Weird \"Table\"");
  EXPECT_EQ(ref.op, Op::Delete);
}

TEST(Payload, AcceptsABareEventId) {
  EventRef ref;
  ASSERT_TRUE(parse_payload("0000000000000002:9", ref));
  EXPECT_EQ(ref.seq, 9u);
  EXPECT_TRUE(ref.table.empty());
  EXPECT_FALSE(ref.op.has_value());
}

TEST(Payload, RejectsWhatItDidNotWrite) {
  EventRef ref;
  for (const char *bad :
       {"{}", "{\"table\": \"x\"}", "{\"event\": \"0000000000000001:1\", \"op\": \"MERGE\"}",
        "{\"event\": \"0000000000000001:1\", \"extra\": \"x\"}",
        "{\"event\": \"0000000000000001:1\"} trailing", "{\"event\": 1}", "[1]", "null"})
    EXPECT_FALSE(parse_payload(bad, ref)) << bad;
}

TEST(Channel, NamedAfterTheTableOid) {
  EXPECT_EQ(channel_name(16384), "ectosync_16384");
}
