/* The order of date/timestamp/timestamptz key texts (src/core/plan.hpp's
 * compare_time_texts): the order load() gives rows keyed by them. */
#include "core/plan.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using ectosync::compare_time_texts;

/* Every pair of texts, listed in ascending order, compares as listed. */
void expect_ascending(const std::vector<std::string> &texts) {
  for (size_t i = 0; i < texts.size(); i++)
    for (size_t j = 0; j < texts.size(); j++) {
      int want = i < j ? -1 : (i > j ? 1 : 0);
      EXPECT_EQ(compare_time_texts(texts[i], texts[j]), want) << texts[i] << " vs " << texts[j];
    }
}

TEST(TimeKeys, DatesInTimeOrder) {
  expect_ascending({"-infinity", "4713-01-01 BC", "0044-03-15 BC", "0044-03-16 BC", "0001-12-31 BC",
                    "0001-01-01", "0999-12-31", "2026-03-01", "2026-12-01", "9999-12-31",
                    "10000-01-01", "12026-01-01", "5874897-12-31", "infinity"});
}

TEST(TimeKeys, TimestampsWithFractions) {
  expect_ascending({"-infinity", "0001-01-01T00:00:00 BC", "0001-12-31T23:59:59.999999 BC",
                    "2026-03-01T08:00:00", "2026-03-01T08:00:00.000001", "2026-03-01T08:00:00.25",
                    "2026-03-01T08:00:00.5", "2026-03-01T08:00:01", "2026-03-01T20:00:00",
                    "294276-12-31T23:59:59.999999", "infinity"});
}

TEST(TimeKeys, TimestamptzInUtc) {
  expect_ascending({"-infinity", "0044-03-15T12:00:00+00:00 BC", "0044-03-15T12:00:00.5+00:00 BC",
                    "2026-03-01T08:00:00+00:00", "2026-03-01T08:00:00.05+00:00",
                    "2026-03-01T08:00:00.5+00:00", "2026-03-01T08:00:01+00:00", "infinity"});
}

TEST(TimeKeys, MalformedTextsComeLastByBytes) {
  expect_ascending({"2026-03-01", "infinity", "20-01-01", "abc", "abd"});
  EXPECT_EQ(compare_time_texts("", ""), 0);
}

}  // namespace
