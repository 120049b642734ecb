/*
 * query_test.cpp: a list's "$query" (src/core/query.hpp) parsed and
 * normalized against a one-table catalog, and the errors that name what is
 * wrong.
 */
#include "core/query.hpp"

#include <gtest/gtest.h>

using namespace ectosync;

namespace {

/* posts (id integer, title text, body jsonb); values render as given. */
class PostsCatalog : public CatalogSource {
 public:
  PostsCatalog() {
    posts_.relid = 1;
    posts_.schema = "public";
    posts_.name = "posts";
    posts_.sql_name = "public.posts";
    const std::string eq = "OPERATOR(pg_catalog.=)";
    posts_.columns = {
        ColumnDesc{"id", 1, "integer", KeyKind::Number, eq, "pg_catalog.int4", "pg_catalog.int4"},
        ColumnDesc{"title", 2, "text", KeyKind::Text, eq, "pg_catalog.text", "pg_catalog.text"},
        ColumnDesc{"body", 3, "jsonb", std::nullopt, eq, "pg_catalog.jsonb", "pg_catalog.jsonb"}};
    posts_.pk = {1};
  }
  const TableDesc &table(uint32_t) override { return posts_; }
  std::optional<uint32_t> find_table(const std::string &) override { return std::nullopt; }
  std::vector<ForeignKey> foreign_keys_from(uint32_t) override { return {}; }
  std::vector<ForeignKey> foreign_keys_to(uint32_t) override { return {}; }
  TableDesc posts_;
};

std::string normalized(const std::string &json, ListQuery &q) {
  PostsCatalog catalog;
  return parse_query(catalog, catalog.posts_, parse_json(json), q);
}

std::string sqlstate_of(const std::string &json) {
  ListQuery q;
  try {
    normalized(json, q);
  } catch (const AssocError &e) {
    return e.sqlstate + ": " + e.message;
  }
  return "no error";
}

}  // namespace

TEST(Query, NormalizesEveryMember) {
  ListQuery q;
  EXPECT_EQ(normalized(R"({"order_by": [{"title": "DESC"}, "id"], "offset": 0, "limit": 20,
                          "where": {"title": "a", "id": null}})",
                       q),
            R"({"limit": 20, "where": [["title", "=", "a"], ["id", "is null"]], )"
            R"("order_by": [{"title": "desc nulls first"}, {"id": "asc nulls last"}]})");
  ASSERT_EQ(q.order.size(), 2u);
  EXPECT_TRUE(q.order[0].desc && q.order[0].nulls_first);
  EXPECT_FALSE(q.order[1].desc || q.order[1].nulls_first);
  EXPECT_EQ(*q.limit, 20);
  EXPECT_EQ(q.offset, 0);
  ASSERT_EQ(q.where.size(), 2u);
  EXPECT_EQ(q.where[0].values, std::vector<std::string>{"a"});
  EXPECT_EQ(q.where[1].op, CmpOp::IsNull);
  EXPECT_TRUE(q.ordered() && q.windowed());
}

TEST(Query, ConditionsTakeEveryOperator) {
  ListQuery q;
  EXPECT_EQ(
      normalized(R"({"where": [["id", "!=", 3], ["id", "in", [1, 2]], ["title", "is not null"],
                                     ["title", ">=", "m"]]})",
                 q),
      R"({"where": [["id", "<>", 3], ["id", "in", [1, 2]], ["title", "is not null"], )"
      R"(["title", ">=", "m"]]})");
  EXPECT_EQ(q.where[1].values, (std::vector<std::string>{"1", "2"}));
  EXPECT_FALSE(q.ordered() || q.windowed());
}

TEST(Query, OrTakesWheresOfEitherForm) {
  ListQuery q;
  EXPECT_EQ(normalized(R"({"where": [["id", ">", 1], {"or": [{"title": "a"},
                          [["title", "is null"], {"or": [[["id", "in", [7]]]]}]]}]})",
                       q),
            R"({"where": [["id", ">", 1], {"or": [[["title", "=", "a"]], )"
            R"([["title", "is null"], {"or": [[["id", "in", [7]]]]}]]}]})");
  ASSERT_EQ(q.where.size(), 2u);
  const Condition &any = q.where[1];
  EXPECT_EQ(any.op, CmpOp::Or);
  ASSERT_EQ(any.any.size(), 2u);
  EXPECT_EQ(any.any[0][0].column.name, "title");
  EXPECT_EQ(any.any[1][1].op, CmpOp::Or);
  EXPECT_EQ(any.any[1][1].any[0][0].values, std::vector<std::string>{"7"});
}

TEST(Query, ErrorsNameWhatIsWrong) {
  EXPECT_EQ(sqlstate_of(R"({"order_by": "nope"})"),
            "42703: column \"nope\" of table public.posts does not exist (in $query order_by)");
  EXPECT_EQ(sqlstate_of(R"({"order_by": "body"})").substr(0, 5), "0A000");
  EXPECT_EQ(sqlstate_of(R"({"where": [["id", "like", 1]]})"),
            "22023: invalid $query operator \"like\"");
  EXPECT_EQ(sqlstate_of(R"({"limit": -1})"), "22023: invalid $query limit: -1");
  EXPECT_EQ(sqlstate_of(R"({"limit": 1.5})"), "22023: invalid $query limit: 1.5");
  EXPECT_EQ(sqlstate_of(R"({"where": [["id", "=", null]]})").substr(0, 5), "22023");
  EXPECT_EQ(sqlstate_of(R"({"where": [["id", "is null", 1]]})").substr(0, 5), "22023");
  EXPECT_EQ(sqlstate_of(R"({"order_by": ["id", {"id": "desc"}]})"),
            "22023: invalid $query order_by: column \"id\" is named twice");
  EXPECT_EQ(sqlstate_of(R"({"where": [{"or": []}]})"),
            "22023: invalid $query where condition: {\"or\":[]}");
  EXPECT_EQ(sqlstate_of(R"({"where": [{"and": [["id", "=", 1]]}]})").substr(0, 5), "22023");
  EXPECT_EQ(sqlstate_of(R"({"where": {"or": [{"id": 1}]}})"),
            "22023: invalid $query where: {\"or\":[{\"id\":1}]}");
  EXPECT_EQ(sqlstate_of(R"({"where": [{"or": [[["nope", "=", 1]]]}]})").substr(0, 5), "42703");
  std::string deep = R"(["id", "=", 1])";
  for (int i = 0; i < 9; i++) deep = R"({"or": [[)" + deep + "]]}";
  EXPECT_EQ(sqlstate_of(R"({"where": [)" + deep + "]}"),
            "22023: invalid $query where: \"or\" nests more than 8 deep");
  EXPECT_EQ(sqlstate_of(R"({"group_by": "id"})"),
            "22023: unknown $query option \"group_by\" for table public.posts");
}
