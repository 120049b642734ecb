/* Which events concern a held value (src/core/interest.hpp). */
#include "core/interest.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>

#include <algorithm>
#include <memory>

namespace {

using ectosync::ColumnChange;
using ectosync::Event;
using ectosync::Interest;
using ectosync::Op;

constexpr uint32_t kPosts = 100, kComments = 101, kTags = 102, kOther = 103;

/* An event of relid with (attnum, old, new) key columns. */
Event event(uint32_t relid, Op op, std::vector<ColumnChange> cols) {
  Event ev;
  ev.seq = 7;
  ev.relid = relid;
  ev.op = op;
  ev.columns = std::move(cols);
  return ev;
}

ColumnChange col(int16_t attnum, std::optional<std::string> old_value,
                 std::optional<std::string> new_value) {
  ColumnChange c;
  c.attnum = attnum;
  c.has_old = old_value.has_value();
  c.has_new = new_value.has_value();
  c.old_value = std::move(old_value);
  c.new_value = std::move(new_value);
  return c;
}

std::unique_ptr<Interest> interest() {
  auto in = std::make_unique<Interest>();
  in->clear();
  return in;
}

TEST(Interest, KeyedColumnsMatchOldOrNewValues) {
  /* one author's posts (filter author_id = 2, attnum 2) with their comments (post_id, attnum 2) */
  auto in = interest();
  in->add(kPosts, 2, "2");
  in->add(kPosts, 1, "10");
  in->add(kComments, 2, "10");
  EXPECT_TRUE(in->matches(event(kPosts, Op::Insert, {col(1, {}, "11"), col(2, {}, "2")})));
  EXPECT_FALSE(in->matches(event(kPosts, Op::Insert, {col(1, {}, "12"), col(2, {}, "3")})));
  /* a post moving out of the filter, and one moving in */
  EXPECT_TRUE(in->matches(event(kPosts, Op::Update, {col(1, "10", "10"), col(2, "2", "3")})));
  EXPECT_TRUE(in->matches(event(kPosts, Op::Update, {col(1, "13", "13"), col(2, "3", "2")})));
  /* comments of post 10, moving to or from it */
  EXPECT_TRUE(in->matches(event(kComments, Op::Update, {col(1, "5", "5"), col(2, "9", "10")})));
  EXPECT_FALSE(in->matches(event(kComments, Op::Delete, {col(1, "5", {}), col(2, "9", {})})));
  /* a table the value does not hold */
  EXPECT_FALSE(in->matches(event(kOther, Op::Insert, {col(1, {}, "10"), col(2, {}, "2")})));
  /* values are compared in their canonical text: a numeric foreign key
   * written "10.0" names post 10; "100" and "1.0" do not */
  EXPECT_TRUE(in->matches(event(kComments, Op::Insert, {col(1, {}, "5"), col(2, {}, "10.0")})));
  EXPECT_FALSE(in->matches(event(kComments, Op::Insert, {col(1, {}, "5"), col(2, {}, "100")})));
  EXPECT_FALSE(in->matches(event(kComments, Op::Insert, {col(1, {}, "5"), col(2, {}, "1.0")})));
}

TEST(Interest, WhatItCannotTellMatches) {
  auto in = interest();
  in->add(kPosts, 2, "2");
  in->add_table(kTags); /* a table of the value without key columns */
  /* an event whose capture does not track the keyed column */
  EXPECT_TRUE(in->matches(event(kPosts, Op::Insert, {col(1, {}, "11")})));
  EXPECT_TRUE(in->matches(event(kTags, Op::Update, {col(1, "1", "1")})));
  /* NULL keys carry no value: no match through them */
  EXPECT_FALSE(in->matches(event(kPosts, Op::Insert, {col(1, {}, "11"), col(2, {}, {})})));
}

TEST(Interest, WildTablesAndReloadMarkers) {
  auto in = interest();
  in->add_wild(kPosts);
  in->add(kComments, 2, "10");
  EXPECT_TRUE(in->matches(event(kPosts, Op::Delete, {col(1, "99", {})})));
  EXPECT_TRUE(in->matches(event(kComments, Op::Reload, {})));
  EXPECT_TRUE(in->matches(event(0, Op::Reload, {}))); /* every table */
  EXPECT_FALSE(in->matches(event(kOther, Op::Reload, {})));
}

TEST(Interest, TooManyTablesOrColumnsMatchesEverything) {
  auto in = interest();
  for (uint32_t t = 0; t <= ectosync::kInterestTables; t++) in->add_table(1000 + t);
  EXPECT_TRUE(in->every_event);
  EXPECT_TRUE(in->matches(event(kOther, Op::Insert, {col(1, {}, "1")})));
  auto cols = interest();
  for (int16_t a = 1; a <= ectosync::kInterestColumns + 1; a++) cols->add_column(kPosts, a);
  EXPECT_TRUE(cols->every_event);
}

TEST(Interest, BloomFilterRarelyMatchesWhatWasNotAdded) {
  /* 2,000 keys (a large filtered value): false positives stay rare */
  auto in = interest();
  for (int i = 0; i < 2000; i++) in->add(kComments, 2, std::to_string(i));
  for (int i = 0; i < 2000; i++)
    ASSERT_TRUE(in->matches(event(kComments, Op::Insert, {col(2, {}, std::to_string(i))})));
  int false_positives = 0;
  for (int i = 2000; i < 12000; i++)
    false_positives += in->matches(event(kComments, Op::Insert, {col(2, {}, std::to_string(i))}));
  EXPECT_LT(false_positives, 100) << "more than 1% of 10,000 other keys matched";
}

}  // namespace

TEST(Interest, SmallFilterServesSmallValues) {
  /* ectosync.interest_size's default, 1 kB: a user's value of 100 keys */
  auto in = std::make_unique<ectosync::Interest>();
  in->clear(1024 * 8);
  EXPECT_EQ(ectosync::Interest::bytes(in->bloom_bits), offsetof(ectosync::Interest, bloom) + 1024);
  for (int i = 0; i < 100; i++) in->add(kComments, 2, std::to_string(i));
  for (int i = 0; i < 100; i++)
    ASSERT_TRUE(in->matches(event(kComments, Op::Insert, {col(2, {}, std::to_string(i))})));
  int false_positives = 0;
  for (int i = 100; i < 10100; i++)
    false_positives += in->matches(event(kComments, Op::Insert, {col(2, {}, std::to_string(i))}));
  EXPECT_LT(false_positives, 100) << "more than 1% of 10,000 other keys matched";
  /* Only the first kB is used: a copy of Interest::bytes() matches alike. */
  auto copy = std::make_unique<ectosync::Interest>();
  copy->clear(4096 * 8);
  std::memcpy(copy.get(), in.get(), ectosync::Interest::bytes(in->bloom_bits));
  EXPECT_TRUE(copy->matches(event(kComments, Op::Insert, {col(2, {}, "42")})));
}

TEST(Interest, SmallValuesKeepTheirTokensAndMatchExactly) {
  /* 1 kB holds 128 tokens: a user's value of tens of rows matches no
   * other key, and the worker can index its tokens */
  auto in = std::make_unique<ectosync::Interest>();
  in->clear(1024 * 8);
  for (int i = 0; i < 128; i++) in->add(kComments, 2, std::to_string(i));
  in->add(kComments, 2, "7"); /* (a token again: once) */
  ASSERT_TRUE(in->exact);
  auto [tokens, n] = in->tokens();
  ASSERT_EQ(n, 128);
  EXPECT_TRUE(std::is_sorted(tokens, tokens + n));
  for (int i = 0; i < 128; i++)
    ASSERT_TRUE(in->matches(event(kComments, Op::Insert, {col(2, {}, std::to_string(i))})));
  for (int i = 128; i < 20128; i++)
    ASSERT_FALSE(in->matches(event(kComments, Op::Insert, {col(2, {}, std::to_string(i))})));
  /* The 129th turns the words into a Bloom filter of all of them. */
  in->add(kComments, 2, "128");
  EXPECT_FALSE(in->exact);
  EXPECT_EQ(in->tokens().second, 0);
  for (int i = 0; i <= 128; i++)
    ASSERT_TRUE(in->matches(event(kComments, Op::Insert, {col(2, {}, std::to_string(i))})));
  int false_positives = 0;
  for (int i = 129; i < 10129; i++)
    false_positives += in->matches(event(kComments, Op::Insert, {col(2, {}, std::to_string(i))}));
  EXPECT_LT(false_positives, 200) << "more than 2% of 10,000 other keys matched";
}

TEST(Interest, NumbersCompareAsNumericOrdersThem) {
  using ectosync::KeyKind;
  auto cmp = [](const char *a, const char *b) {
    return ectosync::compare_event_texts(KeyKind::Number, a, b);
  };
  EXPECT_EQ(cmp("9", "10"), -1);
  EXPECT_EQ(cmp("-10", "-9"), -1);
  EXPECT_EQ(cmp("1.50", "1.5"), 0);
  EXPECT_EQ(cmp("0.05", "0.1"), -1);
  EXPECT_EQ(cmp("-0.00", "0"), 0);
  EXPECT_EQ(cmp("007", "7"), 0);
  EXPECT_EQ(cmp("-1", "0"), -1);
  EXPECT_EQ(cmp("123456789012345678901234567890", "99"), 1);
  EXPECT_EQ(cmp("-Infinity", "-1e9"), -1);
  EXPECT_EQ(cmp("Infinity", "99999"), 1);
  EXPECT_EQ(cmp("NaN", "Infinity"), 1); /* numeric: NaN after every number */
  EXPECT_EQ(ectosync::compare_event_texts(KeyKind::TimestampTz, "2024-01-02T00:00:00+00:00",
                                          "2024-01-10T00:00:00+00:00"),
            -1);
  EXPECT_EQ(ectosync::compare_event_texts(KeyKind::Text, "B", "a"), -1); /* bytewise */
}

TEST(Interest, FullWindowIgnoresRowsThatSortAfterIt) {
  /* the 3 newest posts (inserted_at, attnum 4, descending): the last holds
   * 2024-01-05; held posts 7, 8, 9 */
  using ectosync::KeyKind;
  auto in = interest();
  ASSERT_TRUE(
      in->add_range(kPosts, 4, KeyKind::TimestampTz, true, true, "2024-01-05T00:00:00+00:00"));
  for (const char *id : {"7", "8", "9"}) in->add(kPosts, 1, id);
  auto at = [](const char *t) { return std::optional<std::string>(t); };
  /* an older post inserted, updated or deleted: nothing */
  EXPECT_FALSE(in->matches(
      event(kPosts, Op::Insert, {col(1, {}, "20"), col(4, {}, at("2024-01-01T00:00:00+00:00"))})));
  EXPECT_FALSE(in->matches(event(kPosts, Op::Update,
                                 {col(1, "3", "3"), col(4, at("2023-12-01T00:00:00+00:00"),
                                                        at("2024-01-04T23:59:59+00:00"))})));
  EXPECT_FALSE(in->matches(
      event(kPosts, Op::Delete, {col(1, "4", {}), col(4, at("2023-01-01T00:00:00+00:00"), {})})));
  /* a newer one, one tied with the last, one moving in: it may enter */
  EXPECT_TRUE(in->matches(
      event(kPosts, Op::Insert, {col(1, {}, "21"), col(4, {}, at("2024-02-01T00:00:00+00:00"))})));
  EXPECT_TRUE(in->matches(
      event(kPosts, Op::Insert, {col(1, {}, "22"), col(4, {}, at("2024-01-05T00:00:00+00:00"))})));
  EXPECT_TRUE(in->matches(event(kPosts, Op::Update,
                                {col(1, "3", "3"), col(4, at("2023-12-01T00:00:00+00:00"),
                                                       at("2024-03-01T00:00:00+00:00"))})));
  /* a held post, whatever its time; a NULL time; an event without the column */
  EXPECT_TRUE(in->matches(event(kPosts, Op::Update,
                                {col(1, "8", "8"), col(4, at("2023-01-01T00:00:00+00:00"),
                                                       at("2023-01-01T00:00:00+00:00"))})));
  ColumnChange null_time = col(4, {}, {});
  null_time.has_new = true; /* NULL */
  EXPECT_TRUE(in->matches(event(kPosts, Op::Insert, {col(1, {}, "23"), null_time})));
  EXPECT_TRUE(in->matches(event(kPosts, Op::Insert, {col(1, {}, "24")})));
  /* ascending: the other side */
  auto asc = interest();
  ASSERT_TRUE(asc->add_range(kPosts, 2, KeyKind::Number, false, false, "50"));
  EXPECT_TRUE(asc->matches(event(kPosts, Op::Insert, {col(1, {}, "1"), col(2, {}, "49.5")})));
  EXPECT_FALSE(asc->matches(event(kPosts, Op::Insert, {col(1, {}, "1"), col(2, {}, "51")})));
  /* what it cannot say: the caller makes the table wild */
  EXPECT_FALSE(asc->add_range(kPosts, 3, KeyKind::Char, false, false, "x"));
  EXPECT_FALSE(asc->add_range(kPosts, 3, KeyKind::Text, false, false, std::string(200, 'x')));
}

TEST(Interest, WhereGuardsIgnoreRowsOutsideItBeforeAndAfter) {
  /* posts where published (attnum 3) = true and score (2) > 5, every post wild */
  using ectosync::CmpOp;
  using ectosync::KeyKind;
  auto in = interest();
  in->add_wild(kPosts);
  ASSERT_TRUE(in->add_guard(kPosts, 3, KeyKind::Bool, CmpOp::Eq, "true"));
  ASSERT_TRUE(in->add_guard(kPosts, 2, KeyKind::Number, CmpOp::Gt, "5"));
  EXPECT_EQ(in->guarded(), kPosts);
  /* outside before and after: nothing */
  EXPECT_FALSE(in->matches(event(kPosts, Op::Insert, {col(1, {}, "1"), col(3, {}, "false")})));
  EXPECT_FALSE(in->matches(
      event(kPosts, Op::Update, {col(1, "1", "1"), col(2, "9", "9"), col(3, "false", "false")})));
  EXPECT_FALSE(in->matches(
      event(kPosts, Op::Update, {col(1, "1", "1"), col(2, "3", "4"), col(3, "true", "true")})));
  EXPECT_FALSE(in->matches(event(kPosts, Op::Delete, {col(1, "1", {}), col(2, "5", {})})));
  ColumnChange null_score = col(2, {}, {});
  null_score.has_new = true; /* NULL: > 5 is not true */
  EXPECT_FALSE(in->matches(event(kPosts, Op::Insert, {col(1, {}, "1"), null_score})));
  /* entering, leaving, or a column it does not carry: it matters */
  EXPECT_TRUE(in->matches(
      event(kPosts, Op::Update, {col(1, "1", "1"), col(2, "9", "9"), col(3, "false", "true")})));
  EXPECT_TRUE(in->matches(event(kPosts, Op::Delete, {col(1, "1", {}), col(2, "6", {})})));
  EXPECT_TRUE(in->matches(event(kPosts, Op::Insert, {col(1, {}, "1")})));
  /* other tables, and RELOAD markers, as before */
  in->add_wild(kComments);
  EXPECT_TRUE(in->matches(event(kComments, Op::Insert, {col(1, {}, "1"), col(3, {}, "false")})));
  EXPECT_TRUE(in->matches(event(kPosts, Op::Reload, {})));
  /* what a guard cannot be, and guards of one table only */
  EXPECT_FALSE(in->add_guard(kPosts, 2, KeyKind::Number, CmpOp::In, "1"));
  EXPECT_FALSE(in->add_guard(kPosts, 4, KeyKind::Char, CmpOp::Eq, "x"));
  EXPECT_FALSE(in->add_guard(kComments, 2, KeyKind::Number, CmpOp::Eq, "1"));
  auto nulls = interest();
  nulls->add_wild(kPosts);
  ASSERT_TRUE(nulls->add_guard(kPosts, 2, KeyKind::Number, CmpOp::IsNull, ""));
  EXPECT_TRUE(nulls->matches(event(kPosts, Op::Insert, {col(1, {}, "1"), null_score})));
  EXPECT_FALSE(nulls->matches(event(kPosts, Op::Insert, {col(1, {}, "1"), col(2, {}, "0")})));
}
