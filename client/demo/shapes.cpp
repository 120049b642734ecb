/*
 * shapes.cpp: the holders' shapes (shapes.hpp).
 */
#include "shapes.hpp"

#include <stdexcept>

namespace demo {

namespace {

/* The name of the association from table to target (first by name), or throw. */
std::string assoc_to(pg::Connection &conn, const std::string &table, const std::string &target,
                     const std::string &kind = "") {
  auto r = conn.exec(
      "SELECT name FROM ectosync.associations($1::regclass) WHERE target = $2::regclass AND "
      "($3 = '' OR kind = $3) ORDER BY name LIMIT 1",
      {table, target, kind});
  if (r.rows() == 0)
    throw std::runtime_error("no association from " + table + " to " + target + " " + kind);
  return r.str(0, 0);
}

}  // namespace

/* The holders' shapes: a realistic mix of what an application shows. */
std::vector<Shape> make_shapes(pg::Connection &conn, const Options &o, int persons) {
  auto q = [](const std::string &s) { return "\"" + s + "\""; };
  std::string tags = assoc_to(conn, "posts", "tags");
  std::string comments = assoc_to(conn, "posts", "comments");
  std::string comment_author = assoc_to(conn, "comments", "persons");
  std::string post_author = assoc_to(conn, "posts", "persons", "belongs_to");
  std::string profile = assoc_to(conn, "persons", "profiles");
  std::string labels = assoc_to(conn, "posts", "labels");
  std::string comment_post = assoc_to(conn, "comments", "posts");
  std::string entry_post = assoc_to(conn, "audit.entries", "posts");
  /* posts that have audit entries and comments, authors that have posts */
  auto ids = [&](const std::string &sql) {
    std::vector<std::string> v;
    auto r = conn.exec(sql);
    for (int i = 0; i < r.rows(); i++) v.push_back(r.str(i, 0));
    return v;
  };
  auto audited =
      ids("SELECT post_id FROM audit.entries WHERE post_id IS NOT NULL GROUP BY 1 ORDER BY "
          "count(*) DESC, 1 LIMIT 50");
  auto commented =
      ids("SELECT post_id FROM comments GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 50");
  auto authors =
      ids("SELECT author_id FROM posts WHERE author_id IS NOT NULL GROUP BY 1 ORDER BY count(*) "
          "DESC, 1 LIMIT 50");
  auto pick = [](const std::vector<std::string> &v, int i, int fallback) {
    return v.empty() ? std::to_string(fallback) : v[static_cast<size_t>(i) % v.size()];
  };
  std::vector<Shape> out;
  for (int i = 0; i < o.holders; i++) {
    std::string author = pick(authors, i, 1 + (i * 37) % persons);
    switch (o.shapes[static_cast<size_t>(i) % o.shapes.size()]) {
      case 0:
        out.push_back({"all posts with tags", "posts", "[" + q(tags) + "]", ""});
        break;
      case 1:
        out.push_back({"one author's posts, comments, their authors", "posts",
                       "[{" + q(comments) + ": [" + q(comment_author) + "]}]",
                       "{\"author_id\": " + author + "}"});
        break;
      case 2:
        out.push_back({"the tag list", "tags", "[]", ""});
        break;
      case 3:
        out.push_back({"one post's comments with post and author", "comments",
                       "[" + q(comment_post) + ", " + q(comment_author) + "]",
                       "{\"post_id\": " + pick(commented, i, 1) + "}"});
        break;
      case 4:
        out.push_back({"one author's posts with labels, tags, author", "posts",
                       "[" + q(labels) + ", " + q(tags) + ", " + q(post_author) + "]",
                       "{\"author_id\": " + author + "}"});
        break;
      case 5:
        out.push_back({"persons with profiles", "persons", "[" + q(profile) + "]", ""});
        break;
      case 6:
        out.push_back({"one post's audit entries", "audit.entries", "[" + q(entry_post) + "]",
                       "{\"post_id\": " + pick(audited, i, 1) + "}"});
        break;
      case 7:
        out.push_back({"20 newest published posts, tags by name", "posts",
                       "{\"$query\": {\"where\": [[\"published\", \"=\", true]], "
                       "\"order_by\": {\"inserted_at\": \"desc\"}, \"limit\": 20}, " +
                           q(tags) + ": {\"$query\": {\"order_by\": \"name\"}}}",
                       ""});
        break;
      case 8:
        out.push_back({"one author's posts by title, 50 a page", "posts",
                       "{\"$query\": {\"order_by\": \"title\", \"limit\": 50}}",
                       "{\"author_id\": " + author + "}"});
        break;
      default:
        out.push_back({"20 newest posts, 3 newest comments each", "posts",
                       "{\"$query\": {\"order_by\": {\"inserted_at\": \"desc\"}, \"limit\": 20}, " +
                           q(comments) +
                           ": {\"$query\": {\"order_by\": {\"id\": \"desc\"}, \"limit\": 3}}}",
                       ""});
        break;
    }
  }
  return out;
}

}  // namespace demo
