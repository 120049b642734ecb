/*
 * The check that generated SQL names nothing unqualified (src/core/sql_check.hpp):
 * each rule flags what it must and passes what it must, and the statements
 * that ecto_sync generates pass as written.
 */
#include "core/sql_check.hpp"

#include <gtest/gtest.h>

namespace {

using ectosync::table_marker;
using ectosync::table_markers;
using ectosync::unqualified_names;

/* The findings of sql, one per line, for failure messages. */
std::string findings(const std::string &sql) {
  std::string out;
  for (const auto &f : unqualified_names(sql)) out += f + "\n";
  return out;
}

#define EXPECT_CLEAN(sql) EXPECT_EQ(findings(sql), "") << (sql)
#define EXPECT_FLAGGED(sql) EXPECT_NE(findings(sql), "") << (sql)

TEST(SqlCheck, FunctionCalls) {
  EXPECT_FLAGGED("SELECT unnest($1)");
  EXPECT_FLAGGED("SELECT count(*) FROM pg_catalog.pg_class");
  EXPECT_FLAGGED("SELECT \"unnest\"($1)");
  EXPECT_FLAGGED("SELECT x FROM pg_catalog.pg_class WHERE upper (relname) IS NULL");
  EXPECT_CLEAN("SELECT pg_catalog.unnest($1)");
  EXPECT_CLEAN("SELECT pg_catalog.count(*) FROM pg_catalog.pg_class");
  EXPECT_CLEAN("SELECT \"pg_catalog\".\"unnest\"($1)");
  EXPECT_CLEAN("SELECT coalesce($1, $2), CAST($1 AS integer), ARRAY(SELECT 1), ROW(1, 2)");
  EXPECT_CLEAN("SELECT EXISTS (SELECT FROM pg_catalog.pg_class WHERE (true) AND (NOT (false)))");
}

TEST(SqlCheck, AliasAndInsertColumnLists) {
  EXPECT_CLEAN("SELECT k.c0 FROM ROWS FROM (pg_catalog.unnest($1)) AS k(c0, c1)");
  EXPECT_CLEAN("INSERT INTO ectosync.watches (root, spec) VALUES ($1, $2)");
  EXPECT_CLEAN("INSERT INTO watches (root, spec) VALUES ($1, $2)");
  EXPECT_FLAGGED("SELECT k.c0 FROM ROWS FROM (unnest($1)) AS k(c0)");
}

TEST(SqlCheck, Operators) {
  EXPECT_FLAGGED("SELECT 1 FROM pg_catalog.pg_class WHERE oid = $1");
  EXPECT_FLAGGED("SELECT a.attnum > 0 FROM pg_catalog.pg_attribute a");
  EXPECT_FLAGGED("SELECT $1 || $2");
  EXPECT_FLAGGED("SELECT $1 - 1");
  EXPECT_FLAGGED("SELECT 2 * 3");
  EXPECT_FLAGGED("SELECT $1 OPERATOR(=) $2");
  EXPECT_FLAGGED("SELECT $1 = ANY($2)");
  EXPECT_CLEAN("SELECT 1 FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) $1");
  EXPECT_CLEAN("SELECT $1 OPERATOR(pg_catalog.||) $2, $1 OPERATOR(\"public\".<>) $2");
  EXPECT_CLEAN("SELECT $1 OPERATOR(pg_catalog.=) ANY ($2::pg_catalog.int2[])");
  EXPECT_CLEAN("SELECT * FROM pg_catalog.pg_class");
  EXPECT_CLEAN("SELECT x.*, t.* FROM pg_catalog.pg_class x, pg_catalog.pg_class t");
  EXPECT_CLEAN("SELECT pg_catalog.count(*), pg_catalog.to_jsonb(t0.*) FROM s.t t0");
}

TEST(SqlCheck, AssignmentsOfSetLists) {
  EXPECT_CLEAN("UPDATE s.t SET a = $1, b = s.f($2) WHERE c OPERATOR(pg_catalog.=) $3");
  EXPECT_CLEAN(
      "INSERT INTO s.t (a, b) VALUES ($1, $2) ON CONFLICT (a) DO UPDATE SET b = EXCLUDED.b,"
      " c = EXCLUDED.c");
  EXPECT_FLAGGED("UPDATE s.t SET a = $1 WHERE c = $3");
  EXPECT_FLAGGED("UPDATE s.t SET a = $1 = $2");
  EXPECT_FLAGGED("UPDATE s.t SET a = ($1 = $2)");
  EXPECT_FLAGGED("UPDATE s.t SET a = $1 + 1");
}

TEST(SqlCheck, KeywordsThatFindOperators) {
  EXPECT_FLAGGED("SELECT 1 WHERE 'r' IN ('r', 'p')");
  EXPECT_FLAGGED("SELECT 1 WHERE 'r' NOT IN (SELECT 'p')");
  EXPECT_FLAGGED("SELECT 1 WHERE $1 LIKE 'a%'");
  EXPECT_FLAGGED("SELECT 1 WHERE $1 ILIKE 'a%'");
  EXPECT_FLAGGED("SELECT 1 WHERE $1 SIMILAR TO 'a%'");
  EXPECT_FLAGGED("SELECT 1 WHERE $1 BETWEEN 1 AND 2");
  EXPECT_FLAGGED("SELECT 1 WHERE $1 IS DISTINCT FROM $2");
  EXPECT_FLAGGED("SELECT 1 WHERE $1 IS NOT DISTINCT FROM $2");
  EXPECT_FLAGGED("SELECT NULLIF($1, $2), GREATEST($1, $2), LEAST($1, $2)");
  EXPECT_FLAGGED("SELECT CASE $1 WHEN 1 THEN 2 END");
  EXPECT_CLEAN("SELECT CASE WHEN $1 IS NULL THEN 2 ELSE 3 END");
  EXPECT_CLEAN("SELECT 1 WHERE $1 IS NOT NULL AND $2 IS TRUE");
  EXPECT_CLEAN("LOCK TABLE ectosync.watches IN SHARE ROW EXCLUSIVE MODE");
  EXPECT_CLEAN(
      "SELECT 1 WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::pg_catalog.\"char\"[])");
}

TEST(SqlCheck, Types) {
  EXPECT_FLAGGED("SELECT $1::text");
  EXPECT_FLAGGED("SELECT $1::oid::regclass");
  EXPECT_FLAGGED("SELECT $1::int2[]");
  EXPECT_FLAGGED("SELECT $1::\"char\"");
  EXPECT_FLAGGED("SELECT $1::bool");
  EXPECT_FLAGGED("SELECT CAST($1 AS text)");
  EXPECT_FLAGGED("SELECT CAST($1 AS public.t) = $2");
  EXPECT_FLAGGED("SELECT jsonb '{}'");
  EXPECT_CLEAN("SELECT $1::pg_catalog.text, $1::pg_catalog.oid::pg_catalog.regclass");
  EXPECT_CLEAN(
      "SELECT $1::pg_catalog.int2[], $1::pg_catalog.\"char\", $1::\"pg_catalog\".\"char\"");
  EXPECT_CLEAN("SELECT CAST($1 AS pg_catalog.text), CAST($1 AS public.\"My Type\"[])");
  EXPECT_CLEAN("SELECT pg_catalog.jsonb '{}', interval '1 day', $1::numeric(10,2)");
  EXPECT_CLEAN(
      "SELECT $1::integer, $1::int, $1::smallint, $1::bigint, $1::real, $1::float,"
      " $1::double precision, $1::decimal, $1::dec, $1::boolean, $1::character(3),"
      " $1::character varying(10), $1::char, $1::varchar(3), $1::bit varying(5), $1::bit(2),"
      " $1::national character varying(2), $1::timestamp(3) with time zone,"
      " $1::timestamp without time zone, $1::time with time zone, $1::interval year to month,"
      " $1::interval day to second(3), $1::integer[], $1::bigint ARRAY, $1::integer[][]");
  EXPECT_CLEAN("SELECT CAST($1 AS character varying(10)), CAST($1 AS timestamp with time zone)");
}

TEST(SqlCheck, Collations) {
  EXPECT_FLAGGED("SELECT 1 ORDER BY $1 COLLATE \"C\"");
  EXPECT_FLAGGED("SELECT 1 ORDER BY $1 COLLATE mine");
  EXPECT_CLEAN("SELECT 1 ORDER BY $1::pg_catalog.text COLLATE pg_catalog.\"C\"");
}

TEST(SqlCheck, WhatIsNotSql) {
  EXPECT_CLEAN("SELECT 'a = b || unnest(x)::text', E'it\\'s = ', U&'d = \\0061'");
  EXPECT_CLEAN("SELECT 'it''s = f(x)' -- a = b, f(x)\n");
  EXPECT_CLEAN("SELECT /* a = b /* nested f(x) */ c = d */ 1");
  EXPECT_CLEAN("SELECT $$ a = f(b) $$, $tag$ x::text $tag$, $1, 1.5e-3, .5");
  EXPECT_CLEAN("SELECT t.\"a = f(b)\", \"x\"\"y\" FROM s.t");
  EXPECT_CLEAN("SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)");
  EXPECT_FLAGGED("SELECT 'unterminated");
  EXPECT_FLAGGED("SELECT $x$ unterminated");
  EXPECT_FLAGGED("SELECT 1 /* unterminated");
}

/* Statements as src/ writes them. */
TEST(SqlCheck, StatementsOfTheCode) {
  /* catalog.cpp */
  EXPECT_CLEAN(
      "SELECT n.nspname, c.relname, pg_catalog.format('%I.%I', n.nspname, c.relname), c.relkind"
      " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
      " ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"
      " WHERE c.oid OPERATOR(pg_catalog.=) $1"
      " AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::pg_catalog.\"char\"[])");
  EXPECT_CLEAN(
      "SELECT i.indisprimary, (SELECT pg_catalog.string_agg(i.indkey[k]::pg_catalog.text, ' '"
      " ORDER BY k) FROM pg_catalog.generate_series(0, i.indnkeyatts OPERATOR(pg_catalog.-) 1) k)"
      " FROM pg_catalog.pg_index i WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND i.indisunique"
      " AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL ORDER BY i.indexrelid");
  EXPECT_FLAGGED(
      "SELECT i.indisprimary, (SELECT pg_catalog.string_agg(i.indkey[k]::text, ' ' ORDER BY k)"
      " FROM pg_catalog.generate_series(0, i.indnkeyatts - 1) k) FROM pg_catalog.pg_index i"
      " WHERE i.indrelid = $1");
  /* watch.cpp */
  EXPECT_CLEAN(
      "INSERT INTO ectosync.watched_tables (relid, pk_attnums, tracked_attnums, is_join,"
      " join_targets) VALUES ($1::pg_catalog.oid::pg_catalog.regclass, $2::pg_catalog.int2[],"
      " $3::pg_catalog.int2[], $4::boolean, $5::pg_catalog.jsonb)"
      " ON CONFLICT (relid) DO UPDATE SET pk_attnums = EXCLUDED.pk_attnums,"
      " tracked_attnums = EXCLUDED.tracked_attnums, is_join = EXCLUDED.is_join,"
      " join_targets = EXCLUDED.join_targets");
  EXPECT_CLEAN(
      "CREATE TRIGGER ectosync_capture AFTER INSERT OR UPDATE OR DELETE ON \"public\".\"t\""
      " FOR EACH ROW EXECUTE FUNCTION ectosync.capture('1', '1', '2')");
  EXPECT_CLEAN("DROP TRIGGER ectosync_capture ON \"public\".\"t\"");
  EXPECT_CLEAN(
      "UPDATE ectosync.watches SET tables = $3::pg_catalog.jsonb"
      " WHERE root::pg_catalog.oid OPERATOR(pg_catalog.=) $1::pg_catalog.oid"
      " AND spec OPERATOR(pg_catalog.=) $2::pg_catalog.jsonb"
      " AND NOT (tables OPERATOR(pg_catalog.=) $3::pg_catalog.jsonb)");
  /* the worker's load_plan */
  EXPECT_CLEAN(
      "SELECT x.* FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]),"
      " pg_catalog.unnest($2::pg_catalog.text[])) AS k(c0, c1), LATERAL (SELECT t.\"a\", t.b,"
      " pg_catalog.to_jsonb(t) FROM \"public\".\"t\" AS t WHERE t.\"a\" OPERATOR(pg_catalog.=)"
      " k.c0::integer AND t.b OPERATOR(pg_catalog.=) k.c1::pg_catalog.text OFFSET 0) AS x");
  /* load.cpp */
  EXPECT_CLEAN(
      "SELECT pg_catalog.jsonb_build_object('ectosync', 1, 'table', $1, 'relid',"
      " $2::pg_catalog.int8, 'rows', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb"
      "(t0.*) OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('tags', (SELECT coalesce("
      "pg_catalog.jsonb_agg(pg_catalog.to_jsonb(t1.*) ORDER BY t1.\"id\"::pg_catalog.text COLLATE"
      " pg_catalog.\"C\"), '[]'::pg_catalog.jsonb) FROM \"public\".\"tags\" t1 WHERE EXISTS"
      " (SELECT FROM \"public\".\"posts_tags\" j2 WHERE j2.\"post_id\" OPERATOR(pg_catalog.=)"
      " t0.\"id\" AND j2.\"tag_id\" OPERATOR(pg_catalog.=) t1.\"id\"))) ORDER BY t0.\"id\"),"
      " '[]'::pg_catalog.jsonb) FROM \"public\".\"posts\" t0 WHERE t0.\"author\""
      " OPERATOR(pg_catalog.=) CAST($7 AS pg_catalog.text) AND t0.\"x\" IS NULL))");
}

/* Table markers (pg/table_names.cpp): comments only.  A schema may be
 * named with a marker's text; it must mark nothing, or a query could be
 * made to accept a relation that no name of it was taken from. */
TEST(TableMarkers, CommentsOnly) {
  using V = std::vector<uint32_t>;
  EXPECT_EQ(table_marker(42), "/*ectosync:42*/");
  EXPECT_EQ(table_markers("SELECT 1 FROM ONLY /*ectosync:42*/ \"s\".\"t\" t0,"
                          " /*ectosync:7*/ \"s\".\"u\" t1, /*ectosync:42*/ \"s\".\"t\" t2"),
            (V{42, 7}));
  /* in a quoted name, a string constant, a dollar quote, a line comment */
  EXPECT_EQ(table_markers("SELECT 1 FROM ONLY /*ectosync:42*/ \"s/*ectosync:7*/\".\"t\""), (V{42}));
  EXPECT_EQ(table_markers("SELECT '/*ectosync:7*/' FROM /*ectosync:42*/ \"s\".\"t\""), (V{42}));
  EXPECT_EQ(table_markers("SELECT E'it\\'s /*ectosync:7*/', 'a''/*ectosync:8*/'"), (V{}));
  EXPECT_EQ(table_markers("SELECT $q$ /*ectosync:7*/ $q$ -- /*ectosync:8*/\n"), (V{}));
  EXPECT_EQ(table_markers("SELECT \"a\"\"/*ectosync:7*/\" FROM t"), (V{}));
  /* only a marker's own shape */
  EXPECT_EQ(table_markers("/* /*ectosync:9*/ */ /*ectosync:x*/ /*ectosync:99999999999*/"), (V{}));
  EXPECT_EQ(table_markers("/*ectosync:0*/ /*ectosync:12 */"), (V{}));
}

}  // namespace
