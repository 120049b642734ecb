/*
 * assoc_test.cpp: association discovery, naming and spec resolution
 * (src/core/assoc.hpp) against an in-memory catalog shaped like the blog domain
 * of the regression tests.
 */
#include "core/assoc.hpp"

#include <gtest/gtest.h>

#include <map>

using namespace ectosync;

namespace {

/* A catalog held in maps: tables by relid, foreign keys in a list. */
class MemoryCatalog : public CatalogSource {
 public:
  /* Adds a table; columns are "name:kind" with kind n (number), t (text) or x (other). */
  uint32_t add(const std::string &schema, const std::string &name,
               const std::vector<std::string> &columns, std::vector<int16_t> pk) {
    TableDesc t;
    t.relid = next_relid_++;
    t.schema = schema;
    t.name = name;
    t.sql_name = schema + "." + name;
    int16_t attnum = 1;
    for (const auto &spec : columns) {
      ColumnDesc c;
      c.name = spec.substr(0, spec.find(':'));
      c.attnum = attnum++;
      char kind = spec.back();
      c.type_name = kind == 'n' ? "integer" : kind == 't' ? "text" : "jsonb";
      if (kind == 'n') c.kind = KeyKind::Number;
      if (kind == 't') c.kind = KeyKind::Text;
      t.columns.push_back(c);
    }
    t.pk = pk;
    if (!pk.empty()) t.uniques.push_back(pk);
    tables_[t.relid] = t;
    return t.relid;
  }
  void unique(uint32_t relid, std::vector<int16_t> cols) { tables_[relid].uniques.push_back(cols); }
  void fk(const std::string &name, uint32_t from, std::vector<int16_t> from_cols, uint32_t to,
          std::vector<int16_t> to_cols) {
    fks_.push_back(ForeignKey{name, from, from_cols, to, to_cols});
  }

  const TableDesc &table(uint32_t relid) override {
    auto it = tables_.find(relid);
    if (it == tables_.end()) throw AssocError(kUndefinedTable, "no table " + std::to_string(relid));
    return it->second;
  }
  std::optional<uint32_t> find_table(const std::string &name) override {
    for (const auto &[relid, t] : tables_)
      if (t.name == name || t.sql_name == name) return relid;
    return std::nullopt;
  }
  std::vector<ForeignKey> foreign_keys_from(uint32_t relid) override {
    std::vector<ForeignKey> out;
    for (const auto &f : fks_)
      if (f.from_relid == relid) out.push_back(f);
    return out;
  }
  std::vector<ForeignKey> foreign_keys_to(uint32_t relid) override {
    std::vector<ForeignKey> out;
    for (const auto &f : fks_)
      if (f.to_relid == relid) out.push_back(f);
    return out;
  }

 private:
  uint32_t next_relid_ = 100;
  std::map<uint32_t, TableDesc> tables_;
  std::vector<ForeignKey> fks_;
};

/* The blog domain: persons, profiles, posts, comments, tags, posts_tags, entries. */
class Blog : public ::testing::Test {
 protected:
  void SetUp() override {
    persons = db.add("public", "persons", {"id:n", "name:t"}, {1});
    profiles = db.add("public", "profiles", {"id:n", "person_id:n"}, {1});
    db.unique(profiles, {2});
    db.fk("profiles_person_id_fkey", profiles, {2}, persons, {1});
    posts = db.add("public", "posts", {"id:n", "author_id:n", "title:t"}, {1});
    db.fk("posts_author_id_fkey", posts, {2}, persons, {1});
    comments = db.add("public", "comments", {"id:n", "post_id:n", "author_id:n"}, {1});
    db.fk("comments_post_id_fkey", comments, {2}, posts, {1});
    db.fk("comments_author_id_fkey", comments, {3}, persons, {1});
    tags = db.add("public", "tags", {"id:n", "name:t"}, {1});
    posts_tags = db.add("public", "posts_tags", {"post_id:n", "tag_id:n"}, {1, 2});
    db.fk("posts_tags_post_id_fkey", posts_tags, {1}, posts, {1});
    db.fk("posts_tags_tag_id_fkey", posts_tags, {2}, tags, {1});
    entries = db.add("audit", "entries", {"entry_no:n", "post_id:n"}, {1});
    db.fk("entries_post_id_fkey", entries, {2}, posts, {1});
  }

  /* "name kind target" lines of discover(relid). */
  std::vector<std::string> summary(uint32_t relid) {
    std::vector<std::string> out;
    for (const auto &a : discover(db, relid))
      out.push_back(a.name + " " + assoc_kind_name(a.kind) + " " + db.table(a.target).name);
    return out;
  }

  Plan plan(uint32_t relid, const std::string &spec) {
    return resolve(db, relid, parse_spec(spec));
  }

  MemoryCatalog db;
  uint32_t persons, profiles, posts, comments, tags, posts_tags, entries;
};

using Lines = std::vector<std::string>;

}  // namespace

TEST(Json, ParsesAndQuotes) {
  Json j = parse_spec(R"( {"a": [1, "x\"y\u00e9", true, null], "b": {}} )");
  ASSERT_EQ(j.type, Json::Type::Object);
  ASSERT_EQ(j.members.size(), 2u);
  const Json *a = j.find("a");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->items.size(), 4u);
  EXPECT_EQ(a->items[0].text, "1");
  EXPECT_EQ(a->items[1].text, "x\"y\xc3\xa9");
  EXPECT_TRUE(a->items[2].boolean);
  EXPECT_EQ(a->items[3].type, Json::Type::Null);
  EXPECT_EQ(json_quote("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\"");
}

TEST(Json, RejectsBadText) {
  EXPECT_THROW(parse_spec("[1,"), AssocError);
  EXPECT_THROW(parse_spec("{\"a\" 1}"), AssocError);
  EXPECT_THROW(parse_spec("[] x"), AssocError);
  try {
    parse_spec("[tags]");
    FAIL();
  } catch (const AssocError &e) {
    EXPECT_EQ(e.sqlstate, "22032");
  }
}

TEST(Naming, Singular) {
  EXPECT_EQ(singular("persons"), "person");
  EXPECT_EQ(singular("categories"), "category");
  EXPECT_EQ(singular("addresses"), "address");
  EXPECT_EQ(singular("glass"), "glass");
  EXPECT_EQ(singular("staff"), "staff");
}

TEST_F(Blog, DiscoversEveryKind) {
  EXPECT_EQ(summary(posts), (Lines{"author belongs_to persons", "comments has_many comments",
                                   "entries has_many entries", "tags many_to_many tags"}));
  EXPECT_EQ(summary(persons), (Lines{"comments has_many comments", "posts has_many posts",
                                     "profile has_one profiles"}));
  EXPECT_EQ(summary(tags), (Lines{"posts many_to_many posts"}));
  EXPECT_EQ(summary(profiles), (Lines{"person belongs_to persons"}));
}

TEST_F(Blog, ManyToManyColumns) {
  auto assocs = discover(db, posts);
  const AssocDesc &tagsd = assocs.back();
  ASSERT_EQ(tagsd.name, "tags");
  EXPECT_EQ(tagsd.join, posts_tags);
  EXPECT_EQ(tagsd.owner_cols, (std::vector<int16_t>{1}));
  EXPECT_EQ(tagsd.join_owner_cols, (std::vector<int16_t>{1}));
  EXPECT_EQ(tagsd.join_target_cols, (std::vector<int16_t>{2}));
  EXPECT_EQ(tagsd.target_cols, (std::vector<int16_t>{1}));
}

TEST_F(Blog, JoinTableNeedsUniqueKeyOnBothKeys) {
  uint32_t links = db.add("public", "links", {"id:n", "post_id:n", "tag_id:n"}, {1});
  db.fk("links_post_id_fkey", links, {2}, posts, {1});
  db.fk("links_tag_id_fkey", links, {3}, tags, {1});
  /* a surrogate key only: links are objects of their own */
  EXPECT_EQ(summary(tags), (Lines{"links has_many links", "posts many_to_many posts"}));
  db.unique(links, {3, 2});
  /* both are "posts", then both "posts_by_post_id": level 2 names the join tables */
  EXPECT_EQ(summary(tags), (Lines{"posts_through_links_by_post_id many_to_many posts",
                                  "posts_through_posts_tags_by_post_id many_to_many posts"}));
}

TEST_F(Blog, AmbiguousForeignKeysGetColumnNames) {
  uint32_t reviews = db.add("public", "reviews", {"id:n", "author_id:n", "editor_id:n"}, {1});
  db.fk("reviews_author_id_fkey", reviews, {2}, persons, {1});
  db.fk("reviews_editor_id_fkey", reviews, {3}, persons, {1});
  EXPECT_EQ(summary(reviews), (Lines{"author belongs_to persons", "editor belongs_to persons"}));
  Lines p = summary(persons);
  EXPECT_EQ(
      p, (Lines{"comments has_many comments", "posts has_many posts", "profile has_one profiles",
                "reviews_by_author_id has_many reviews", "reviews_by_editor_id has_many reviews"}));
}

TEST_F(Blog, NameCollidingWithColumnMoves) {
  uint32_t books = db.add("public", "books", {"id:n", "writer:t", "person:n"}, {1});
  db.fk("books_person_fkey", books, {3}, persons, {1});
  /* base name "person" is a column: person_by_person */
  EXPECT_EQ(summary(books), (Lines{"person_by_person belongs_to persons"}));
}

TEST_F(Blog, SelfReferencingJoinTable) {
  uint32_t follows = db.add("public", "follows", {"follower_id:n", "followee_id:n"}, {1, 2});
  db.fk("follows_follower_id_fkey", follows, {1}, persons, {1});
  db.fk("follows_followee_id_fkey", follows, {2}, persons, {1});
  Lines p = summary(persons);
  EXPECT_EQ(p, (Lines{"comments has_many comments", "persons_by_followee_id many_to_many persons",
                      "persons_by_follower_id many_to_many persons", "posts has_many posts",
                      "profile has_one profiles"}));
}

TEST_F(Blog, SameTableNameInTwoSchemasGetsSuffixes) {
  uint32_t other = db.add("other", "entries", {"entry_no:n", "post_id:n"}, {1});
  db.fk("entries_post_id_fkey", other, {2}, posts, {1});
  Lines p = summary(posts);
  EXPECT_EQ(
      p, (Lines{"author belongs_to persons", "comments has_many comments",
                "entries_by_entries_post_id_fkey has_many entries",
                "entries_by_entries_post_id_fkey_2 has_many entries", "tags many_to_many tags"}));
  /* audit sorts before other: audit.entries keeps the plain level-2 name */
  auto assocs = discover(db, posts);
  EXPECT_EQ(assocs[2].target, entries);
  EXPECT_EQ(assocs[3].target, other);
}

TEST_F(Blog, NormalizesNestedSpecs) {
  Plan p = plan(posts, R"(["tags", {"comments": ["author"]}])");
  EXPECT_EQ(p.spec, R"({"tags": {}, "comments": {"author": {}}})");
  EXPECT_EQ(plan(posts, R"({"comments": "author", "tags": true})").spec, p.spec);
  EXPECT_EQ(plan(posts, R"(["comments", {"comments": {"author": null}}, "tags"])").spec, p.spec);
  EXPECT_EQ(plan(posts, "[]").spec, "{}");
  EXPECT_EQ(plan(posts, "null").spec, "{}");
  ASSERT_EQ(p.root->assocs.size(), 2u);
  const Assoc &c = p.root->assocs[0];
  EXPECT_EQ(c.name, "comments");
  EXPECT_EQ(c.kind, AssocKind::HasMany);
  EXPECT_TRUE(c.is_many());
  EXPECT_EQ(c.owner_cols[0].name, "id");
  EXPECT_EQ(c.target_cols[0].name, "post_id");
  ASSERT_EQ(c.target->assocs.size(), 1u);
  EXPECT_EQ(c.target->assocs[0].target->table.name, "persons");
  const Assoc &t = p.root->assocs[1];
  ASSERT_TRUE(t.join.has_value());
  EXPECT_EQ(t.join->name, "posts_tags");
  EXPECT_EQ(t.join->pk.size(), 2u);
  EXPECT_EQ(p.tables(), (std::vector<uint32_t>{posts, comments, persons, posts_tags, tags}));
}

TEST_F(Blog, NestsToAnyDepth) {
  Plan p = plan(posts, R"({"author": {"posts": {"comments": {"author": {"profile": []}}}}})");
  EXPECT_EQ(p.spec, R"({"author": {"posts": {"comments": {"author": {"profile": {}}}}}})");
  const PlanNode *n = p.root.get();
  for (int i = 0; i < 5; ++i) n = n->assocs.at(0).target.get();
  EXPECT_EQ(n->table.name, "profiles");
  EXPECT_EQ(p.tables(), (std::vector<uint32_t>{posts, persons, comments, profiles}));
}

TEST_F(Blog, ExplicitDefinitions) {
  Plan p = plan(posts, R"({"writer": {"belongs_to": "persons", "columns": ["author_id"],
                                       "assocs": ["profile"]}})");
  EXPECT_EQ(p.spec, R"({"writer": {"assocs": {"profile": {}}, "columns": ["author_id"], )"
                    R"("belongs_to": "public.persons", "references": ["id"]}})");
  EXPECT_EQ(p.root->assocs[0].kind, AssocKind::BelongsTo);
  EXPECT_EQ(p.root->assocs[0].target->assocs[0].name, "profile");
  /* the normalized form resolves to itself */
  EXPECT_EQ(plan(posts, p.spec).spec, p.spec);

  Plan m = plan(posts, R"({"marks": {"many_to_many": "tags", "through": "posts_tags",
                                      "owner_columns": "post_id", "target_columns": "tag_id"}})");
  EXPECT_EQ(m.root->assocs[0].kind, AssocKind::ManyToMany);
  EXPECT_EQ(m.root->assocs[0].join->name, "posts_tags");
  EXPECT_EQ(plan(posts, m.spec).spec, m.spec);

  Plan h = plan(posts, R"({"notes": {"has_many": "audit.entries", "columns": ["post_id"]}})");
  EXPECT_EQ(h.root->assocs[0].target_cols[0].name, "post_id");
  EXPECT_EQ(h.root->assocs[0].owner_cols[0].name, "id");
}

/* The message of the AssocError that fn throws. */
template <typename Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const AssocError &e) {
    return e.sqlstate + " " + e.message;
  }
  return "no error";
}

TEST_F(Blog, ErrorsNameWhatIsWrong) {
  EXPECT_EQ(error_of([&] { plan(posts, R"(["nope"])"); }),
            "42704 table public.posts has no association \"nope\"");
  EXPECT_EQ(error_of([&] { plan(posts, R"({"comments": ["nope"]})"); }),
            "42704 table public.comments has no association \"nope\"");
  EXPECT_EQ(
      error_of([&] { plan(posts, R"({"w": {"belongs_to": "people", "columns": "author_id"}})"); }),
      "42P01 table \"people\" does not exist");
  EXPECT_EQ(error_of([&] { plan(posts, R"({"w": {"belongs_to": "persons", "colums": "x"}})"); }),
            "22023 unknown option \"colums\" in the definition of association \"w\"");
  EXPECT_EQ(error_of([&] { plan(posts, R"({"w": {"belongs_to": "persons", "columns": "x"}})"); }),
            "42703 column \"x\" of table public.posts does not exist");
  EXPECT_EQ(error_of([&] {
              plan(posts, R"({"title": {"belongs_to": "persons", "columns": "author_id"}})");
            }),
            "22023 association name \"title\" is a column of table public.posts");
  EXPECT_EQ(
      error_of([&] { plan(posts, R"({"w": {"belongs_to": "persons", "columns": "title"}})"); }),
      "22023 association \"w\" pairs column \"title\" of public.posts with column \"id\" of "
      "public.persons, which renders differently in jsonb");
  EXPECT_EQ(error_of([&] { plan(posts, "[1]"); }),
            "22023 invalid assocs spec: unexpected JSON value");
}

TEST_F(Blog, RefusesTablesWithoutKeysAndOddKeyTypes) {
  uint32_t logs = db.add("public", "logs", {"post_id:n"}, {});
  db.fk("logs_post_id_fkey", logs, {1}, posts, {1});
  EXPECT_EQ(error_of([&] { plan(posts, R"(["logs"])"); }),
            "0A000 table public.logs has no primary key");
  uint32_t docs = db.add("public", "docs", {"id:x", "post_id:n"}, {1});
  db.fk("docs_post_id_fkey", docs, {2}, posts, {1});
  EXPECT_EQ(error_of([&] { plan(posts, R"(["docs"])"); }),
            "0A000 column \"id\" of table public.docs has type jsonb, which ecto_sync cannot use "
            "as a key");
  /* discovery alone does not care */
  EXPECT_EQ(summary(posts).size(), 6u);
}

TEST(Plan, KindNames) {
  EXPECT_STREQ(assoc_kind_name(AssocKind::BelongsTo), "belongs_to");
  EXPECT_STREQ(assoc_kind_name(AssocKind::HasMany), "has_many");
  EXPECT_STREQ(assoc_kind_name(AssocKind::HasOne), "has_one");
  EXPECT_STREQ(assoc_kind_name(AssocKind::ManyToMany), "many_to_many");
  EXPECT_TRUE(Plan().tables().empty());
}

TEST(Json, SurrogatePairsAndDepth) {
  EXPECT_EQ(parse_spec(R"("\ud83d\ude00")").text, "\xf0\x9f\x98\x80");
  EXPECT_THROW(parse_spec(R"("\ud83d")"), AssocError);
  EXPECT_EQ(parse_spec(std::string(200, '[') + std::string(200, ']')).type, Json::Type::Array);
  EXPECT_THROW(parse_spec(std::string(300, '[') + std::string(300, ']')), AssocError);
}

TEST_F(Blog, DefinitionsOfEveryKindNormalize) {
  Plan h = plan(persons, R"({"bio": {"has_one": "profiles", "columns": "person_id",
                                      "assocs": {"owner": {"belongs_to": "persons",
                                                           "columns": "person_id"}}}})");
  EXPECT_EQ(h.spec,
            R"({"bio": {"assocs": {"owner": {"assocs": {}, "columns": ["person_id"], )"
            R"("belongs_to": "public.persons", "references": ["id"]}}, "columns": ["person_id"], )"
            R"("has_one": "public.profiles", "references": ["id"]}})");
  EXPECT_EQ(h.root->assocs[0].kind, AssocKind::HasOne);
  EXPECT_FALSE(h.root->assocs[0].is_many());
  EXPECT_EQ(h.root->assocs[0].target->assocs[0].target->table.name, "persons");
  EXPECT_EQ(plan(persons, h.spec).spec, h.spec);
}

TEST_F(Blog, DefinitionErrors) {
  EXPECT_EQ(error_of([&] {
              plan(posts, R"({"m": {"many_to_many": "tags", "owner_columns": "post_id",
                                    "target_columns": "tag_id"}})");
            }),
            "22023 the definition of association \"m\" needs option \"through\" (a table name)");
  EXPECT_EQ(error_of([&] { plan(posts, R"({"w": {"belongs_to": "persons"}})"); }),
            "22023 the definition of association \"w\" needs option \"columns\"");
  EXPECT_EQ(error_of([&] {
              plan(posts, R"([{"w": {"belongs_to": "persons", "columns": "author_id"}},
                              {"w": {"belongs_to": "persons", "columns": "author_id"}}])");
            }),
            "22023 association \"w\" is defined twice");
  EXPECT_EQ(error_of([&] {
              plan(posts, R"({"w": {"belongs_to": "persons", "columns": ["id", "author_id"]}})");
            }),
            "22023 association \"w\" pairs 2 column(s) of public.posts with 1 of public.persons");
  EXPECT_EQ(error_of([&] { plan(posts, R"({"w": {"belongs_to": "persons", "columns": []}})"); }),
            "22023 option \"columns\" of association \"w\" must be a column name or a non-empty "
            "array of column names");
}

TEST_F(Blog, SpecShapes) {
  /* a bare name, nested names as strings, repeated names merge */
  EXPECT_EQ(plan(posts, R"("comments")").spec, R"({"comments": {}})");
  EXPECT_EQ(plan(posts, R"({"comments": "post"})").spec, R"({"comments": {"post": {}}})");
  EXPECT_EQ(plan(posts, R"([{"comments": "post"}, {"comments": ["author"]}])").spec,
            R"({"comments": {"post": {}, "author": {}}})");
  EXPECT_THROW(plan(posts, R"([["tags"]])"), AssocError);
  EXPECT_THROW(plan(posts, R"({"tags": false})"), AssocError);
}
