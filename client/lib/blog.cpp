#include "blog.hpp"

#include <cstdio>
#include <sstream>
#include <stdexcept>

namespace blog {

const std::vector<std::string> kTables = {
    "public.persons",    "public.profiles", "public.posts",        "public.comments", "public.tags",
    "public.posts_tags", "public.labels",   "public.posts_labels", "audit.entries"};

void drop_schema(pg::Connection &conn) {
  conn.exec(
      "SET client_min_messages = warning;"
      "DROP TABLE IF EXISTS audit.entries, posts_labels, labels, posts_tags, tags, comments, "
      "posts, profiles, persons CASCADE;"
      "DROP SCHEMA IF EXISTS audit CASCADE;"
      "RESET client_min_messages;");
}

void create_schema(pg::Connection &conn) {
  drop_schema(conn);
  conn.exec(R"SQL(
CREATE TABLE persons (
  id bigserial PRIMARY KEY,
  name text NOT NULL,
  email text NOT NULL
);
CREATE TABLE profiles (
  id bigserial PRIMARY KEY,
  person_id bigint NOT NULL UNIQUE REFERENCES persons ON DELETE CASCADE,
  bio text NOT NULL DEFAULT ''
);
CREATE TABLE posts (
  id bigserial PRIMARY KEY,
  author_id bigint REFERENCES persons ON DELETE SET NULL,
  title text NOT NULL,
  body text NOT NULL DEFAULT '',
  published boolean NOT NULL DEFAULT false,
  inserted_at timestamptz NOT NULL DEFAULT '2026-01-01 00:00:00+00'
);
CREATE INDEX ON posts (author_id);
CREATE INDEX ON posts (inserted_at);
CREATE TABLE comments (
  id bigserial PRIMARY KEY,
  post_id bigint NOT NULL REFERENCES posts ON DELETE CASCADE,
  author_id bigint NOT NULL REFERENCES persons,
  body text NOT NULL
);
CREATE INDEX ON comments (post_id);
CREATE INDEX ON comments (author_id);
CREATE TABLE tags (
  id bigserial PRIMARY KEY,
  name text NOT NULL UNIQUE
);
CREATE TABLE posts_tags (
  post_id bigint NOT NULL REFERENCES posts ON DELETE CASCADE,
  tag_id bigint NOT NULL REFERENCES tags ON DELETE CASCADE,
  PRIMARY KEY (post_id, tag_id)
);
CREATE INDEX ON posts_tags (tag_id);
CREATE TABLE labels (
  id uuid PRIMARY KEY,
  name text NOT NULL
);
CREATE TABLE posts_labels (
  post_id bigint NOT NULL REFERENCES posts ON DELETE CASCADE,
  label_id uuid NOT NULL REFERENCES labels ON DELETE CASCADE,
  PRIMARY KEY (post_id, label_id)
);
CREATE INDEX ON posts_labels (label_id);
CREATE SCHEMA audit;
CREATE TABLE audit.entries (
  entry_no bigserial PRIMARY KEY,
  post_id bigint REFERENCES posts ON DELETE SET NULL,
  action text NOT NULL
);
CREATE INDEX ON audit.entries (post_id);
)SQL");
}

std::string random_uuid(std::mt19937_64 &rng) {
  uint64_t a = rng(), b = rng();
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                static_cast<unsigned>((a >> 16) & 0xffff), static_cast<unsigned>(a & 0xffff),
                static_cast<unsigned>(b >> 48),
                static_cast<unsigned long long>(b & 0xffffffffffffULL));
  return buf;
}

void seed(pg::Connection &conn, uint64_t seed, const Scale &s) {
  /* setseed() takes [-1, 1]: map the seed onto it; one session, one order. */
  double unit = static_cast<double>(seed % 1000003) / 1000003.0;
  std::mt19937_64 rng(seed);
  std::string labels = "INSERT INTO labels (id, name) VALUES ";
  for (int i = 0; i < s.labels; i++) {
    if (i) labels += ",";
    labels += "('" + random_uuid(rng) + "', 'label " + std::to_string(i + 1) + "')";
  }
  conn.exec("BEGIN; SELECT setseed(" + std::to_string(unit) + ");");
  conn.exec(labels);
  const std::string P = std::to_string(s.persons), N = std::to_string(s.posts),
                    T = std::to_string(s.tags), C = std::to_string(s.comments_per_post),
                    TP = std::to_string(s.tags_per_post), A = std::to_string(s.audit_entries);
  conn.exec(
      "INSERT INTO persons (name, email) SELECT "
      "(ARRAY['Ada','Alan','Grace','Edsger','Barbara','Donald','Ken','Margaret','Niklaus',"
      "'Frances'])[1 + (random() * 9)::int] || ' ' || "
      "(ARRAY['Lovelace','Turing','Hopper','Dijkstra','Liskov','Knuth','Thompson','Hamilton',"
      "'Wirth','Allen'])[1 + (random() * 9)::int], 'person' || g || '@example.org' "
      "FROM generate_series(1, " +
      P + ") g ORDER BY g");
  conn.exec(
      "INSERT INTO profiles (person_id, bio) SELECT id, 'bio of person ' || id || ': ' || "
      "md5(random()::text) FROM persons WHERE random() < 0.8 ORDER BY id");
  conn.exec(
      "INSERT INTO posts (author_id, title, body, published, inserted_at) SELECT "
      "CASE WHEN random() < 0.05 THEN NULL ELSE 1 + (random() * (" +
      P +
      " - 1))::bigint END, 'Post ' || g || ': ' || substr(md5(random()::text), 1, 12), "
      "repeat(md5(random()::text), 1 + (random() * 4)::int), random() < 0.7, "
      "timestamptz '2026-01-01' + g * interval '17 minutes' FROM generate_series(1, " +
      N + ") g ORDER BY g");
  conn.exec("INSERT INTO tags (name) SELECT 'tag-' || g FROM generate_series(1, " + T +
            ") g ORDER BY g");
  conn.exec("INSERT INTO posts_tags (post_id, tag_id) SELECT DISTINCT p.id, 1 + (random() * (" + T +
            " - 1))::bigint FROM posts p, generate_series(1, " + TP +
            ") ORDER BY 1, 2 ON CONFLICT DO NOTHING");
  conn.exec(
      "INSERT INTO posts_labels (post_id, label_id) SELECT DISTINCT p.id, "
      "(SELECT array_agg(id ORDER BY id) FROM labels)[1 + (random() * (" +
      std::to_string(s.labels) +
      " - 1))::int] FROM posts p WHERE random() < 0.6 ORDER BY 1, 2 ON CONFLICT DO NOTHING");
  conn.exec("INSERT INTO comments (post_id, author_id, body) SELECT p.id, 1 + (random() * (" + P +
            " - 1))::bigint, 'comment ' || g || ' on post ' || p.id || ': ' || md5(random()::text) "
            "FROM posts p, generate_series(1, 2 * " +
            C + ") g WHERE random() < 0.5 ORDER BY p.id, g");
  conn.exec("INSERT INTO audit.entries (post_id, action) SELECT 1 + (random() * (" + N +
            " - 1))::bigint, (ARRAY['created','edited','published','reviewed'])[1 + (random() * "
            "3)::int] FROM generate_series(1, " +
            A + ") g ORDER BY g");
  conn.exec("COMMIT; ANALYZE;");
}

Mix Mix::parse(const std::string &text) {
  Mix m{0, 0, 0, 0, 0};
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    auto eq = item.find('=');
    if (eq == std::string::npos) throw std::invalid_argument("mix: expected name=weight: " + item);
    std::string name = item.substr(0, eq);
    int w = std::stoi(item.substr(eq + 1));
    if (w < 0) throw std::invalid_argument("mix: negative weight");
    if (name == "insert")
      m.insert = w;
    else if (name == "update")
      m.update = w;
    else if (name == "move")
      m.move = w;
    else if (name == "delete")
      m.del = w;
    else if (name == "join")
      m.join = w;
    else
      throw std::invalid_argument("mix: unknown kind " + name);
  }
  if (m.insert + m.update + m.move + m.del + m.join == 0)
    throw std::invalid_argument("mix: all weights are 0");
  return m;
}

std::string Mix::describe() const {
  return "insert=" + std::to_string(insert) + ",update=" + std::to_string(update) +
         ",move=" + std::to_string(move) + ",delete=" + std::to_string(del) +
         ",join=" + std::to_string(join);
}

void IdSpace::read(pg::Connection &conn) {
  auto r = conn.exec(
      "SELECT (SELECT coalesce(max(id), 0) FROM persons), (SELECT coalesce(max(id), 0) FROM "
      "posts), (SELECT coalesce(max(id), 0) FROM comments), (SELECT coalesce(max(id), 0) FROM "
      "tags), (SELECT coalesce(max(id), 0) FROM profiles), (SELECT coalesce(max(entry_no), 0) "
      "FROM audit.entries)");
  persons = r.i64(0, 0);
  posts = r.i64(0, 1);
  comments = r.i64(0, 2);
  tags = r.i64(0, 3);
  profiles = r.i64(0, 4);
  audit = r.i64(0, 5);
  auto l = conn.exec("SELECT id FROM labels ORDER BY id");
  labels.clear();
  for (int i = 0; i < l.rows(); i++) labels.push_back(l.str(i, 0));
}

Workload::Workload(pg::Connection &conn, IdSpace &ids, uint64_t seed, Mix mix, int max_statements)
    : conn_(conn), ids_(ids), rng_(seed), mix_(mix), max_statements_(max_statements) {}

int64_t Workload::pick(const std::atomic<int64_t> &max_id) {
  int64_t hi = max_id.load();
  if (hi < 1) return 1;
  return std::uniform_int_distribution<int64_t>(1, hi)(rng_);
}

static void bump(std::atomic<int64_t> &max_id, int64_t id) {
  int64_t cur = max_id.load();
  while (id > cur && !max_id.compare_exchange_weak(cur, id)) {
  }
}

/* One random statement; returns the rows it affected. */
int64_t Workload::one_statement(std::string &sql) {
  auto s = [](int64_t v) { return std::to_string(v); };
  int total = mix_.insert + mix_.update + mix_.move + mix_.del + mix_.join;
  int r = std::uniform_int_distribution<int>(0, total - 1)(rng_);
  int k = std::uniform_int_distribution<int>(0, 99)(rng_);
  std::string word = "w" + s(static_cast<int64_t>(rng_() % 100000));
  if ((r -= mix_.insert) < 0) {
    if (k < 10) {
      sql = "INSERT INTO persons (name, email) VALUES ('" + word + "', '" + word +
            "@example.org') RETURNING id";
      auto res = conn_.exec(sql);
      bump(ids_.persons, res.i64(0, 0));
      return 1;
    }
    if (k < 15) {
      sql = "INSERT INTO profiles (person_id, bio) SELECT id, 'new bio " + word +
            "' FROM persons WHERE id = " + s(pick(ids_.persons)) +
            " ON CONFLICT (person_id) DO NOTHING RETURNING id";
      auto res = conn_.exec(sql);
      if (res.rows()) bump(ids_.profiles, res.i64(0, 0));
      return res.rows();
    }
    if (k < 45) {
      sql =
          "INSERT INTO posts (author_id, title, body, published, inserted_at) SELECT id, "
          "'New post " +
          word + "', 'body', " + (k % 2 ? "true" : "false") + ", clock_timestamp()" +
          " FROM persons WHERE id = " + s(pick(ids_.persons)) + " RETURNING id";
      auto res = conn_.exec(sql);
      if (res.rows()) bump(ids_.posts, res.i64(0, 0));
      return res.rows();
    }
    if (k < 85) {
      sql = "INSERT INTO comments (post_id, author_id, body) SELECT p.id, a.id, 'comment " + word +
            "' FROM posts p, persons a WHERE p.id = " + s(pick(ids_.posts)) +
            " AND a.id = " + s(pick(ids_.persons)) + " RETURNING id";
      auto res = conn_.exec(sql);
      if (res.rows()) bump(ids_.comments, res.i64(0, 0));
      return res.rows();
    }
    if (k < 88) {
      sql = "INSERT INTO labels (id, name) VALUES ('" + random_uuid(rng_) + "', 'new label " +
            word + "')";
      return conn_.exec(sql).affected();
    }
    if (k < 92) {
      sql = "INSERT INTO tags (name) VALUES ('tag-" + word + "-" + s(pick(ids_.posts)) +
            "') ON CONFLICT (name) DO NOTHING RETURNING id";
      auto res = conn_.exec(sql);
      if (res.rows()) bump(ids_.tags, res.i64(0, 0));
      return res.rows();
    }
    sql = "INSERT INTO audit.entries (post_id, action) SELECT id, 'edited' FROM posts WHERE id = " +
          s(pick(ids_.posts)) + " RETURNING entry_no";
    auto res = conn_.exec(sql);
    if (res.rows()) bump(ids_.audit, res.i64(0, 0));
    return res.rows();
  }
  if ((r -= mix_.update) < 0) {
    if (k < 10)
      sql = "UPDATE persons SET name = 'Renamed " + word + "' WHERE id = " + s(pick(ids_.persons));
    else if (k < 20)
      sql = "UPDATE profiles SET bio = 'bio " + word + "' WHERE id = " + s(pick(ids_.profiles));
    else if (k < 50)
      sql = "UPDATE posts SET title = 'Edited " + word +
            "', published = NOT published WHERE id = " + s(pick(ids_.posts));
    else if (k < 75)
      sql = "UPDATE comments SET body = 'edited " + word + "' WHERE id = " + s(pick(ids_.comments));
    else if (k < 85)
      sql = "UPDATE tags SET name = 'tag-" + word + "-" + s(static_cast<int64_t>(rng_() % 1000)) +
            "' WHERE id = " + s(pick(ids_.tags));
    else if (k < 92 && !ids_.labels.empty())
      sql = "UPDATE labels SET name = 'label " + word + "' WHERE id = '" +
            ids_.labels[rng_() % ids_.labels.size()] + "'";
    else
      sql = "UPDATE audit.entries SET action = 'reviewed " + word +
            "' WHERE entry_no = " + s(pick(ids_.audit));
    return conn_.exec(sql).affected();
  }
  if ((r -= mix_.move) < 0) {
    if (k < 25)
      sql = "UPDATE posts SET author_id = (SELECT id FROM persons WHERE id = " +
            s(pick(ids_.persons)) + ") WHERE id = " + s(pick(ids_.posts));
    else if (k < 55)
      sql = "UPDATE comments SET post_id = p.id FROM posts p WHERE p.id = " + s(pick(ids_.posts)) +
            " AND comments.id = " + s(pick(ids_.comments));
    else if (k < 70)
      sql = "UPDATE comments SET author_id = a.id FROM persons a WHERE a.id = " +
            s(pick(ids_.persons)) + " AND comments.id = " + s(pick(ids_.comments));
    else if (k < 80)
      sql = "UPDATE posts_tags SET tag_id = t.id FROM tags t WHERE t.id = " + s(pick(ids_.tags)) +
            " AND posts_tags.post_id = " + s(pick(ids_.posts)) +
            " AND NOT EXISTS (SELECT 1 FROM posts_tags x WHERE x.post_id = posts_tags.post_id AND "
            "x.tag_id = t.id) AND posts_tags.tag_id = (SELECT min(tag_id) FROM posts_tags y "
            "WHERE y.post_id = posts_tags.post_id)";
    else if (k < 90 && !ids_.labels.empty())
      sql = "UPDATE posts_labels SET label_id = l.id FROM labels l WHERE l.id = '" +
            ids_.labels[rng_() % ids_.labels.size()] +
            "' AND posts_labels.post_id = " + s(pick(ids_.posts)) +
            " AND NOT EXISTS (SELECT 1 FROM posts_labels x WHERE x.post_id = posts_labels.post_id "
            "AND x.label_id = l.id)";
    else
      sql = "UPDATE audit.entries SET post_id = (SELECT id FROM posts WHERE id = " +
            s(pick(ids_.posts)) + ") WHERE entry_no = " + s(pick(ids_.audit));
    return conn_.exec(sql).affected();
  }
  if ((r -= mix_.del) < 0) {
    if (k < 30)
      sql = "DELETE FROM comments WHERE id = " + s(pick(ids_.comments));
    else if (k < 55)
      sql = "DELETE FROM posts WHERE id = " + s(pick(ids_.posts));
    else if (k < 65)
      sql = "DELETE FROM persons p WHERE id = " + s(pick(ids_.persons)) +
            " AND NOT EXISTS (SELECT 1 FROM comments c WHERE c.author_id = p.id)";
    else if (k < 75)
      sql = "DELETE FROM profiles WHERE id = " + s(pick(ids_.profiles));
    else if (k < 78)
      sql =
          "DELETE FROM labels WHERE id = (SELECT id FROM labels WHERE name LIKE 'new label%' "
          "ORDER BY id LIMIT 1)";
    else if (k < 84)
      sql = "DELETE FROM tags WHERE id = " + s(pick(ids_.tags)) +
            " AND id > 10"; /* keep a core of tags */
    else
      sql = "DELETE FROM audit.entries WHERE entry_no = " + s(pick(ids_.audit));
    return conn_.exec(sql).affected();
  }
  /* join rows */
  int64_t post = pick(ids_.posts);
  if (k < 35)
    sql =
        "INSERT INTO posts_tags (post_id, tag_id) SELECT p.id, t.id FROM posts p, tags t "
        "WHERE p.id = " +
        s(post) + " AND t.id = " + s(pick(ids_.tags)) + " ON CONFLICT DO NOTHING";
  else if (k < 65)
    sql = "DELETE FROM posts_tags WHERE post_id = " + s(post) +
          " AND tag_id = (SELECT max(tag_id) FROM posts_tags WHERE post_id = " + s(post) + ")";
  else if (k < 85 && !ids_.labels.empty())
    sql = "INSERT INTO posts_labels (post_id, label_id) SELECT p.id, '" +
          ids_.labels[rng_() % ids_.labels.size()] + "' FROM posts p WHERE p.id = " + s(post) +
          " ON CONFLICT DO NOTHING";
  else
    sql = "DELETE FROM posts_labels WHERE post_id = " + s(post);
  return conn_.exec(sql).affected();
}

std::string Workload::run_transaction(const std::string &after_commit,
                                      const std::string &before_commit, std::string *before_value) {
  int n = std::uniform_int_distribution<int>(1, max_statements_)(rng_);
  WriteStats local;
  std::string sql;
  try {
    conn_.exec("BEGIN");
    for (int i = 0; i < n; i++) {
      local.rows += one_statement(sql);
      local.statements++;
    }
    std::string value;
    if (!before_commit.empty()) {
      auto res = conn_.exec(before_commit);
      if (before_value && res.rows() > 0 && res.cols() > 0) *before_value = res.str(0, 0);
    }
    if (after_commit.empty()) {
      conn_.exec("COMMIT");
    } else {
      auto res = conn_.exec("COMMIT; " + after_commit);
      if (res.rows() > 0 && res.cols() > 0) value = res.str(0, 0);
    }
    local.transactions = 1;
    stats_.add(local);
    return value;
  } catch (const pg::ConnectionLost &) {
    throw;
  } catch (const pg::Error &e) {
    /* 23xxx: a parent went away under us, a unique race; 40xxx: deadlock/serialization */
    const std::string &st = e.sqlstate();
    if (st.size() == 5 && (st.compare(0, 2, "23") == 0 || st.compare(0, 2, "40") == 0)) {
      conn_.exec("ROLLBACK");
      stats_.aborted++;
      return "";
    }
    try {
      conn_.exec("ROLLBACK");
    } catch (...) {
    }
    throw;
  }
}

namespace {
const char *kNotifyFunction = R"SQL(
CREATE OR REPLACE FUNCTION public.ectowatch_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  r record;
BEGIN
  IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
  PERFORM pg_notify('ectowatch_' || TG_RELID::text,
    json_build_object('table', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, 'op', TG_OP,
                      'txid', txid_current()::text, 'row', row_to_json(r))::text);
  RETURN NULL;
END $$;
)SQL";
}  // namespace

void install_notify_trigger(pg::Connection &conn, const std::vector<std::string> &tables) {
  conn.exec(kNotifyFunction);
  for (const auto &t : tables)
    conn.exec("CREATE TRIGGER ectowatch AFTER INSERT OR UPDATE OR DELETE ON " + t +
              " FOR EACH ROW EXECUTE FUNCTION public.ectowatch_notify()");
}

}  // namespace blog
