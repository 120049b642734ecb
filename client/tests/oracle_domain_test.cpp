/*
 * The domain oracle: the seeded oracle (oracle_test.cpp) over a domain
 * beside the blog that has every key the catalog allows and migrates while
 * values are held.
 *
 *   dom.codes    k char(4) pk (keys with blanks and bytes below space)
 *   dom.shifts   (day date, night boolean) pk
 *   dom.gadgets  no primary key: keyed by UNIQUE (serial) NOT NULL;
 *                code_id -> codes (belongs_to; codes has_many gadgets)
 *   dom.events   PARTITION BY RANGE (day), pk (id, day), a partition per
 *                month; April is made and filled on its own (columns in
 *                reverse order) and attached during the run, May is
 *                created during the run;
 *                code_id -> codes, (shift_id, shift_night) -> shifts,
 *                gadget_id -> gadgets (serial), all ON UPDATE CASCADE
 *   dom.notes    (event_id, event_day) -> events (the partitioned table)
 *
 * Holders (held with hold()/wait_changes(), and stateless with load() and
 * sync()) of random roots, shapes and filters (on foreign and key columns), each in a session with
 * random TimeZone, DateStyle, IntervalStyle and extra_float_digits (writers
 * too).  Bursts of random writes (inserts, updates, key changes, rows moved
 * between parents and between partitions, deletes, now and then a bulk
 * statement; in half the bursts an ADD COLUMN while they run) alternate
 * with a random DDL step: ADD COLUMN with a default,
 * DROP COLUMN of an added column, RENAME COLUMN and ALTER COLUMN TYPE of a
 * non-key column, and the partition steps.  After each DDL step, and at the
 * end, every holder must equal a fresh load in its own session.
 *
 * Seeded: the seed is printed; ECTOSYNC_SEED=<n> replays the same domain,
 * shapes, settings, DDL steps and statement streams (the interleaving of
 * the writers is the scheduler's).  ECTOSYNC_DOMAIN_CHANGES (default 1600;
 * 16000 with --long) sets the number of statements, ECTOSYNC_DOMAIN_STEPS
 * (default 8) the number of write bursts, each followed by a DDL step.
 */
#include "common.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

using namespace std::chrono_literals;

namespace {

const std::vector<std::string> kDomainTables = {"dom.codes", "dom.shifts", "dom.gadgets",
                                                "dom.events", "dom.notes"};

/* A column the writers set and the DDL steps rename, retype or drop. */
struct Column {
  std::string table, name, type;
  bool added = false; /* by ADD COLUMN: may be dropped */
};

/* What the writers may use, fixed during a burst (DDL runs between bursts). */
struct DomainState {
  std::vector<Column> columns;
  int months_open = 3; /* events' partitions: January .. month months_open */
};

struct DomainIds {
  std::atomic<int64_t> events{0}, notes{0}, gadgets{0};
};

const char *pick(std::mt19937_64 &rng, const std::vector<const char *> &v) {
  return v[rng() % v.size()];
}

/* Random session settings, as libpq options. */
std::string random_settings(std::mt19937_64 &rng, std::string *describe) {
  std::string tz = pick(rng, {"UTC", "America/New_York", "Asia/Kathmandu", "Pacific/Chatham",
                              "America/St_Johns", "Europe/Berlin", "Australia/Lord_Howe"});
  std::string ds = pick(rng, {"ISO,MDY", "SQL,DMY", "Postgres,YMD", "German", "SQL,MDY"});
  std::string is = pick(rng, {"postgres", "postgres_verbose", "sql_standard", "iso_8601"});
  std::string fd = pick(rng, {"-3", "0", "1", "3"});
  if (describe) *describe = tz + " " + ds + " " + is + " efd " + fd;
  return " options='-c TimeZone=" + tz + " -c DateStyle=" + ds + " -c IntervalStyle=" + is +
         " -c extra_float_digits=" + fd + "'";
}

/* A char(4) key: short, from few characters, with blanks and a byte below space. */
std::string random_code(std::mt19937_64 &rng) {
  static const char alphabet[] = {'a', 'b', 'c', ' ', '\x01'};
  std::string k;
  int n = 1 + static_cast<int>(rng() % 4);
  for (int i = 0; i < n; i++) k += alphabet[rng() % sizeof alphabet];
  if (k[0] == ' ') k[0] = 'a';
  return k;
}

std::string random_day(std::mt19937_64 &rng, int months) {
  char buf[32];
  snprintf(buf, sizeof buf, "2026-%02d-%02d", 1 + static_cast<int>(rng() % months),
           1 + static_cast<int>(rng() % 28));
  return buf;
}

/* A literal of type, as text (the parameter is cast to the type). */
std::string random_value(std::mt19937_64 &rng, const std::string &type) {
  if (type == "int" || type == "bigint") return std::to_string(rng() % 100000);
  if (type == "numeric") return std::to_string(rng() % 10000) + "." + std::to_string(rng() % 100);
  if (type == "float8")
    return pick(rng, {"0.1", "1e-7", "3.141592653589793", "-2.5e300", "Infinity", "100"});
  if (type == "timestamptz") {
    char buf[64];
    snprintf(buf, sizeof buf, "2026-%02d-%02d %02d:%02d:%02d.%03d%s", 1 + int(rng() % 12),
             1 + int(rng() % 28), int(rng() % 24), int(rng() % 60), int(rng() % 60),
             int(rng() % 1000), pick(rng, {"+00", "-04", "+05:45", "+13:45"}));
    return buf;
  }
  if (type == "interval")
    return std::to_string(rng() % 40) + " days " + std::to_string(rng() % 24) + ":" +
           std::to_string(rng() % 60) + ":07.5" + (rng() % 2 ? " ago" : "");
  if (type == "date") return random_day(rng, 12);
  return "t" + std::to_string(rng() % 1000) + (rng() % 4 ? "" : " with ' and \"");
}

/* The type that ALTER COLUMN TYPE turns type into ("" when none). */
std::string next_type(const std::string &type) {
  if (type == "int") return "bigint";
  if (type == "bigint" || type == "float8") return "numeric";
  if (type == "numeric" || type == "interval" || type == "timestamptz" || type == "date")
    return "text";
  return "";
}

/*
 * One random statement on the domain (params: its parameters), from the
 * writer's RNG; rows are picked by the server's random() (setseed per
 * writer session).
 */
std::string random_statement(std::mt19937_64 &rng, const DomainState &st, DomainIds &ids,
                             std::vector<pg::Param> &params) {
  auto col_of = [&](const std::string &table) -> const Column * {
    std::vector<const Column *> cs;
    for (const auto &c : st.columns)
      if (c.table == table) cs.push_back(&c);
    return cs.empty() ? nullptr : cs[rng() % cs.size()];
  };
  auto set_col = [&](const std::string &table) -> std::string {
    const Column *c = col_of(table);
    if (!c) return "";
    params.push_back(random_value(rng, c->type));
    return "\"" + c->name + "\" = $" + std::to_string(params.size()) + "::" + c->type;
  };
  const std::string any_code = "(SELECT k FROM dom.codes ORDER BY random() LIMIT 1)";
  const std::string any_gadget = "(SELECT serial FROM dom.gadgets ORDER BY random() LIMIT 1)";
  const std::string one_event =
      "(id, day) IN (SELECT id, day FROM dom.events ORDER BY random() LIMIT 1)";
  auto p = [&](std::string v) {
    params.push_back(std::move(v));
    return "$" + std::to_string(params.size());
  };
  int r = static_cast<int>(rng() % 100);
  if (r < 2) /* bulk: many rows in one statement (a RELOAD marker past max_xact_events) */
    return "UPDATE dom.events SET code_id = code_id WHERE day < " + p(random_day(rng, 3)) +
           "::date";
  if (r < 14) { /* codes */
    switch (rng() % 4) {
      case 0:
        return "INSERT INTO dom.codes (k) VALUES (" + p(random_code(rng)) + ")";
      case 1: {
        std::string s = set_col("dom.codes");
        if (s.empty()) break;
        return "UPDATE dom.codes SET " + s + " WHERE k = " + any_code;
      }
      case 2: /* a key change: cascades to events and gadgets */
        return "UPDATE dom.codes SET k = " + p(random_code(rng)) + " WHERE k = " + any_code;
      default:
        if (rng() % 3) break;
        return "DELETE FROM dom.codes WHERE k = " + any_code;
    }
    return "INSERT INTO dom.codes (k) VALUES (" + p(random_code(rng)) + ")";
  }
  if (r < 26) { /* shifts */
    const std::string one_shift =
        "(day, night) IN (SELECT day, night FROM dom.shifts ORDER BY random() LIMIT 1)";
    switch (rng() % 4) {
      case 0:
        return "INSERT INTO dom.shifts (day, night) VALUES (" + p(random_day(rng, 5)) + "::date, " +
               p(rng() % 2 ? "true" : "false") + "::boolean)";
      case 1: {
        std::string s = set_col("dom.shifts");
        if (!s.empty()) return "UPDATE dom.shifts SET " + s + " WHERE " + one_shift;
        [[fallthrough]];
      }
      case 2: /* a key change (date and boolean): cascades to events */
        return "UPDATE dom.shifts SET day = " + p(random_day(rng, 5)) +
               "::date, night = NOT night WHERE " + one_shift;
      default:
        return "DELETE FROM dom.shifts WHERE " + one_shift;
    }
  }
  if (r < 40) { /* gadgets: keyed by serial, no primary key */
    const std::string one_gadget = "serial = " + any_gadget;
    switch (rng() % 5) {
      case 0:
        return "INSERT INTO dom.gadgets (serial, code_id) VALUES (" +
               p("g" + std::to_string(++ids.gadgets)) + ", " + any_code + ")";
      case 1: /* moves between codes */
        return "UPDATE dom.gadgets SET code_id = " + any_code + " WHERE " + one_gadget;
      case 2: /* a key change: cascades to events */
        return "UPDATE dom.gadgets SET serial = " + p("g" + std::to_string(++ids.gadgets)) +
               " WHERE " + one_gadget;
      case 3: {
        std::string s = set_col("dom.gadgets");
        if (!s.empty()) return "UPDATE dom.gadgets SET " + s + " WHERE " + one_gadget;
        [[fallthrough]];
      }
      default:
        return "DELETE FROM dom.gadgets WHERE " + one_gadget;
    }
  }
  if (r < 80) { /* events, partitioned */
    switch (rng() % 7) {
      case 0:
      case 1:
        return "INSERT INTO dom.events (id, day, code_id, shift_id, shift_night, gadget_id) "
               "SELECT " +
               p(std::to_string(++ids.events)) + "::int, " + p(random_day(rng, st.months_open)) +
               "::date, " + any_code + ", s.day, s.night, " + (rng() % 3 ? any_gadget : "NULL") +
               " FROM (SELECT day, night FROM dom.shifts ORDER BY random() LIMIT 1) s";
      case 2: { /* moves between codes, shifts, gadgets */
        switch (rng() % 3) {
          case 0:
            return "UPDATE dom.events SET code_id = " + any_code + " WHERE " + one_event;
          case 1:
            return "UPDATE dom.events e SET shift_id = s.day, shift_night = s.night FROM (SELECT "
                   "day, night FROM dom.shifts ORDER BY random() LIMIT 1) s WHERE (e.id, e.day) "
                   "IN (SELECT id, day FROM dom.events ORDER BY random() LIMIT 1)";
          default:
            return "UPDATE dom.events SET gadget_id = " + any_gadget + " WHERE " + one_event;
        }
      }
      case 3: /* a key change: moves between partitions (notes follow, ON UPDATE CASCADE) */
        return "UPDATE dom.events SET day = " + p(random_day(rng, st.months_open)) +
               "::date WHERE " + one_event;
      case 4:
        return "DELETE FROM dom.events WHERE " + one_event;
      default: {
        std::string s = set_col("dom.events");
        if (s.empty()) return "DELETE FROM dom.events WHERE " + one_event;
        return "UPDATE dom.events SET " + s + " WHERE " + one_event;
      }
    }
  }
  /* notes, on the partitioned table */
  const std::string one_note = "id = (SELECT id FROM dom.notes ORDER BY random() LIMIT 1)";
  switch (rng() % 4) {
    case 0:
      return "INSERT INTO dom.notes (id, event_id, event_day) SELECT " +
             p(std::to_string(++ids.notes)) +
             "::int, id, day FROM dom.events ORDER BY random() LIMIT 1";
    case 1: /* moves between events */
      return "UPDATE dom.notes n SET event_id = e.id, event_day = e.day FROM (SELECT id, day "
             "FROM dom.events ORDER BY random() LIMIT 1) e WHERE n." +
             one_note;
    case 2: {
      std::string s = set_col("dom.notes");
      if (!s.empty()) return "UPDATE dom.notes SET " + s + " WHERE " + one_note;
      [[fallthrough]];
    }
    default:
      return "DELETE FROM dom.notes WHERE " + one_note;
  }
}

/* The domain, filled: rows of every table, every partition but April's. */
void create_domain(pg::Connection &conn, uint64_t seed, DomainState &st, DomainIds &ids) {
  conn.exec(R"(
    SET client_min_messages = warning;
    CREATE SCHEMA dom;
    CREATE TABLE dom.codes (k char(4) PRIMARY KEY, v int, at timestamptz);
    CREATE TABLE dom.shifts (day date, night boolean, v int, starts timestamptz, dur interval,
                             ratio float8, PRIMARY KEY (day, night));
    CREATE TABLE dom.gadgets (serial text NOT NULL,
                              code_id char(4) REFERENCES dom.codes ON UPDATE CASCADE
                                ON DELETE SET NULL,
                              v int, made date, UNIQUE (serial));
    CREATE TABLE dom.events (
      id int NOT NULL, day date NOT NULL,
      code_id char(4) REFERENCES dom.codes ON UPDATE CASCADE ON DELETE CASCADE,
      shift_id date, shift_night boolean,
      gadget_id text REFERENCES dom.gadgets (serial) ON UPDATE CASCADE ON DELETE SET NULL,
      v int, at timestamptz, dur interval, ratio float8, pad text,
      PRIMARY KEY (id, day),
      FOREIGN KEY (shift_id, shift_night) REFERENCES dom.shifts
        ON UPDATE CASCADE ON DELETE SET NULL) PARTITION BY RANGE (day);
    CREATE TABLE dom.events_01 PARTITION OF dom.events FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
    CREATE TABLE dom.events_02 PARTITION OF dom.events FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
    CREATE TABLE dom.events_03 PARTITION OF dom.events FOR VALUES FROM ('2026-03-01') TO ('2026-04-01');
    CREATE TABLE dom.notes (id int PRIMARY KEY, event_id int, event_day date, body text,
                            FOREIGN KEY (event_id, event_day) REFERENCES dom.events
                              ON UPDATE CASCADE ON DELETE CASCADE);
  )");
  st.columns = {{"dom.codes", "v", "int"},         {"dom.codes", "at", "timestamptz"},
                {"dom.shifts", "v", "int"},        {"dom.shifts", "starts", "timestamptz"},
                {"dom.shifts", "dur", "interval"}, {"dom.shifts", "ratio", "float8"},
                {"dom.gadgets", "v", "int"},       {"dom.gadgets", "made", "date"},
                {"dom.events", "v", "int"},        {"dom.events", "at", "timestamptz"},
                {"dom.events", "dur", "interval"}, {"dom.events", "ratio", "float8"},
                {"dom.notes", "body", "text"}};
  /* Rows: the writers' statements from a seeded RNG, inserts first. */
  std::mt19937_64 rng(seed ^ 0x5eedd0d0ULL);
  conn.exec("SELECT setseed(" + std::to_string((seed % 1000) / 1000.0) + ")");
  conn.exec(
      "INSERT INTO dom.codes VALUES ('a', 1, now()), ('ab', 2, now()), (E'a\\x01', 3, "
      "now()), ('abc', 4, now()), ('b c', 5, now())");
  for (int i = 0; i < 20; i++)
    conn.exec(
        "INSERT INTO dom.codes (k, v, at) VALUES ($1, $2::int, $3::timestamptz) ON "
        "CONFLICT DO NOTHING",
        {random_code(rng), std::to_string(i), random_value(rng, "timestamptz")});
  for (int i = 0; i < 25; i++)
    conn.exec(
        "INSERT INTO dom.shifts VALUES ($1::date, $2::boolean, $3::int, $4, $5, $6) ON "
        "CONFLICT DO NOTHING",
        {random_day(rng, 5), rng() % 2 ? "true" : "false", std::to_string(i),
         random_value(rng, "timestamptz"), random_value(rng, "interval"),
         random_value(rng, "float8")});
  for (int i = 0; i < 25; i++)
    conn.exec(
        "INSERT INTO dom.gadgets SELECT $1, k, $2::int, $3::date FROM dom.codes ORDER BY "
        "random() LIMIT 1",
        {"g" + std::to_string(++ids.gadgets), std::to_string(i), random_day(rng, 12)});
  for (int i = 0; i < 150; i++)
    conn.exec(
        "INSERT INTO dom.events SELECT $1::int, $2::date, (SELECT k FROM dom.codes ORDER "
        "BY random() LIMIT 1), s.day, s.night, (SELECT serial FROM dom.gadgets ORDER BY "
        "random() LIMIT 1), $3::int, $4, $5, $6 FROM (SELECT day, night FROM dom.shifts "
        "ORDER BY random() LIMIT 1) s",
        {std::to_string(++ids.events), random_day(rng, st.months_open), std::to_string(i),
         random_value(rng, "timestamptz"), random_value(rng, "interval"),
         random_value(rng, "float8")});
  for (int i = 0; i < 150; i++)
    conn.exec(
        "INSERT INTO dom.notes SELECT $1::int, id, day, $2 FROM dom.events ORDER BY "
        "random() LIMIT 1",
        {std::to_string(++ids.notes), random_value(rng, "text")});
}

/* ALTER TABLE ... ADD COLUMN of a random type with a default, on a random table. */
std::string add_column(pg::Connection &conn, std::mt19937_64 &rng, int &counter, Column &c) {
  const std::string table = kDomainTables[rng() % kDomainTables.size()];
  std::string type = pick(rng, {"int", "text", "timestamptz", "interval", "float8", "date"});
  c = Column{table, "x" + std::to_string(++counter), type, true};
  std::string def = random_value(rng, type);
  conn.exec("ALTER TABLE " + table + " ADD COLUMN " + c.name + " " + type + " DEFAULT " +
            conn.quote_literal(def) + "::" + type);
  return "ALTER TABLE " + table + " ADD COLUMN " + c.name + " " + type + " DEFAULT '" + def + "'";
}

/*
 * One DDL step, from rng; returns what it did.  Steps 1 and 3 are the
 * partition steps: April attached (made on its own, columns in reverse
 * order, with rows), May created.
 */
std::string ddl_step(pg::Connection &conn, std::mt19937_64 &rng, int step, DomainState &st,
                     DomainIds &ids, int &counter) {
  if (step == 1) {
    auto cols = conn.exec(
        "SELECT string_agg(format('%I %s%s', attname, format_type(atttypid, atttypmod), CASE WHEN "
        "attnotnull THEN ' NOT NULL' ELSE '' END), ', ' ORDER BY attnum DESC) FROM pg_attribute "
        "WHERE attrelid = 'dom.events'::regclass AND attnum > 0 AND NOT attisdropped");
    conn.exec("CREATE TABLE dom.events_04 (" + cols.str(0, 0) + ")");
    for (int i = 0; i < 8; i++)
      conn.exec(
          "INSERT INTO dom.events_04 (id, day, code_id, gadget_id) SELECT $1::int, "
          "$2::date, (SELECT k FROM dom.codes ORDER BY random() LIMIT 1), (SELECT serial "
          "FROM dom.gadgets ORDER BY random() LIMIT 1)",
          {std::to_string(++ids.events), "2026-04-" + std::to_string(10 + i)});
    conn.exec(
        "ALTER TABLE dom.events ATTACH PARTITION dom.events_04 FOR VALUES FROM ('2026-04-01') TO "
        "('2026-05-01')");
    st.months_open = 4;
    return "ATTACH PARTITION dom.events_04 (columns " + cols.str(0, 0) + ", 8 rows)";
  }
  if (step == 3) {
    conn.exec(
        "CREATE TABLE dom.events_05 PARTITION OF dom.events FOR VALUES FROM ('2026-05-01') TO "
        "('2026-06-01')");
    st.months_open = 5;
    return "CREATE TABLE dom.events_05 PARTITION OF dom.events";
  }
  for (;;) {
    int kind = static_cast<int>(rng() % 4);
    if (kind == 0) {
      Column c;
      std::string sql = add_column(conn, rng, counter, c);
      st.columns.push_back(c);
      return sql;
    }
    /* a column of any table: drops only of added ones, retypes only where a next type is */
    std::vector<size_t> eligible;
    for (size_t i = 0; i < st.columns.size(); i++)
      if ((kind != 1 || st.columns[i].added) &&
          (kind != 3 || !next_type(st.columns[i].type).empty()))
        eligible.push_back(i);
    if (eligible.empty()) continue;
    Column &c = st.columns[eligible[rng() % eligible.size()]];
    const std::string table = c.table;
    std::string sql;
    if (kind == 1) {
      sql = "ALTER TABLE " + table + " DROP COLUMN " + c.name;
      conn.exec(sql);
      st.columns.erase(st.columns.begin() + (&c - st.columns.data()));
    } else if (kind == 2) {
      std::string to = c.name.substr(0, c.name.find('_')) + "_r" + std::to_string(++counter);
      sql = "ALTER TABLE " + table + " RENAME COLUMN " + c.name + " TO " + to;
      conn.exec(sql);
      c.name = to;
    } else {
      std::string to = next_type(c.type);
      sql = "ALTER TABLE " + table + " ALTER COLUMN " + c.name + " TYPE " + to + " USING " +
            c.name + "::" + to;
      conn.exec(sql);
      c.type = to;
    }
    return sql;
  }
}

/*
 * A filter as the blog oracle makes them (a foreign key column), or on a
 * key column that key changes and partition moves take rows into and out
 * of: codes.k (char(4)), shifts.night (boolean), shifts.day and
 * events.day (date, the partition key), gadgets.serial (the unique key).
 */
std::string domain_filter(pg::Connection &conn, std::mt19937_64 &rng, const std::string &table) {
  static const std::vector<std::pair<std::string, std::string>> keys = {
      {"dom.codes", "k"},    {"dom.shifts", "night"},   {"dom.shifts", "day"},
      {"dom.events", "day"}, {"dom.gadgets", "serial"}, {"dom.notes", "event_day"}};
  if (rng() % 100 < 70) return testing_support::random_filter(conn, rng, table);
  std::vector<std::string> cols;
  for (const auto &[t, c] : keys)
    if (t == table) cols.push_back(c);
  if (cols.empty()) return "";
  const std::string col = cols[rng() % cols.size()];
  auto r = conn.exec("SELECT DISTINCT to_jsonb(" + col + ")::text FROM " + table + " WHERE " + col +
                     " IS NOT NULL ORDER BY 1");
  if (r.rows() == 0) return "";
  return "{\"" + col + "\": " + r.str(static_cast<int>(rng() % r.rows()), 0) + "}";
}

}  // namespace

static void domain_values_equal_fresh_loads(uint64_t seed) {
  const bool long_run = testing_support::long_run();
  const int64_t changes =
      testing_support::env_int("ECTOSYNC_DOMAIN_CHANGES", long_run ? 16000 : 1600);
  const int steps = static_cast<int>(testing_support::env_int("ECTOSYNC_DOMAIN_STEPS", 8));
  const int kWriters = 3;
  const int kHolders = static_cast<int>(testing_support::env_int("ECTOSYNC_ORACLE_HOLDERS", 10));
  std::cout << "domain oracle: seed " << seed << " (replay with ECTOSYNC_SEED=" << seed << "), "
            << changes << " statements in " << steps << " bursts, " << kWriters << " writers, "
            << kHolders << " holders" << std::endl;
  SCOPED_TRACE("seed " + std::to_string(seed));

  testing_support::TestDatabase db("ectosync_client_oracle_domain");
  const std::string conninfo = db.conninfo();
  pg::Connection admin(conninfo);
  DomainState st;
  DomainIds ids;
  create_domain(admin, seed, st, ids);

  std::mt19937_64 rng(seed);
  std::vector<std::unique_ptr<ectosync::Holder>> holders;
  for (int i = 0; i < kHolders; i++) {
    ectosync::HolderOptions o;
    std::string settings;
    o.conninfo = conninfo + random_settings(rng, &settings);
    /* the first at events: its rows are cached (the pressure writer's pads evict) */
    o.table = i == 0 ? "dom.events" : kDomainTables[rng() % kDomainTables.size()];
    o.assocs = testing_support::random_shape(admin, rng, o.table, 3);
    o.filter = domain_filter(admin, rng, o.table);
    /* both ways of syncing: held in the session and stateless (load + sync) */
    o.mode =
        i % 3 == 2 ? ectosync::HolderOptions::Mode::Stateless : ectosync::HolderOptions::Mode::Held;
    o.name = "holder " + std::to_string(i) + (i % 3 == 2 ? " (sync)" : " (held)");
    admin.exec("SELECT ectosync.watch($1::regclass, $2::jsonb)", {o.table, o.assocs});
    holders.push_back(std::make_unique<ectosync::Holder>(o));
    std::cout << "  " << o.name << ": " << holders.back()->describe() << " in " << settings
              << std::endl;
  }
  for (auto &h : holders) h->start();
  const auto pressure_before = testing_support::pressure(admin);

  /* Every holder (in parallel: each has its connection) must equal a fresh load. */
  auto check = [&](const std::string &when) {
    admin.exec("SELECT ectosync.wait_for_worker(20000)");
    std::vector<int> ok(holders.size(), 0);
    std::vector<std::string> errors(holders.size());
    {
      std::vector<std::thread> ts;
      for (size_t i = 0; i < holders.size(); i++)
        ts.emplace_back([&, i] {
          try {
            ok[i] = holders[i]->converge(20s);
            if (!ok[i]) errors[i] = testing_support::difference(*holders[i]);
          } catch (const std::exception &e) {
            errors[i] = e.what();
          }
        });
      for (auto &t : ts) t.join();
    }
    bool all = true;
    for (size_t i = 0; i < holders.size(); i++) {
      if (ok[i]) continue;
      all = false;
      ADD_FAILURE() << "seed " << seed << ", " << when << ": " << holders[i]->options().name << " ("
                    << holders[i]->describe() << ", " << holders[i]->options().conninfo
                    << ") differs from a fresh load:\n"
                    << errors[i];
    }
    return all;
  };

  std::atomic<bool> failed{false};
  blog::WriteStats total;
  int counter = 0;
  pg::Clock::duration check_time{};
  for (int step = 0; step <= steps && !failed; step++) {
    /* a burst of writes, holders following */
    std::atomic<int64_t> statements{0};
    const int64_t target = changes / (steps + 1);
    std::atomic<bool> burst_done{false};
    std::vector<std::thread> threads;
    testing_support::JoinAll join{threads, &burst_done};
    std::vector<blog::WriteStats> wstats(kWriters);
    for (int w = 0; w < kWriters; w++) {
      uint64_t wseed = seed * 31 + static_cast<uint64_t>(step * kWriters + w);
      threads.emplace_back([&, w, wseed] {
        try {
          std::mt19937_64 wrng(wseed);
          pg::Connection conn(conninfo + random_settings(wrng, nullptr));
          conn.exec("SELECT setseed(" + std::to_string((wseed % 1000) / 1000.0) + ")");
          auto &s = wstats[w];
          while (statements.load() < target && !failed) {
            int n = 1 + static_cast<int>(wrng() % 3);
            conn.exec("BEGIN");
            int64_t rows = 0;
            try {
              for (int k = 0; k < n; k++) {
                std::vector<pg::Param> params;
                std::string sql = random_statement(wrng, st, ids, params);
                rows += conn.exec(sql, params).affected();
              }
              conn.exec("COMMIT");
              s.transactions++;
              s.statements += n;
              s.rows += rows;
              statements += n;
            } catch (const pg::ConnectionLost &) {
              throw;
            } catch (const pg::Error &e) {
              /* races of the writers: unique and foreign keys, deadlocks */
              std::string cls = e.sqlstate().substr(0, 2);
              if (cls != "23" && cls != "40") throw;
              conn.exec("ROLLBACK");
              s.aborted++;
              statements += 1;
            }
          }
        } catch (const std::exception &e) {
          ADD_FAILURE() << "writer (seed " << wseed << "): " << e.what();
          failed = true;
        }
      });
    }
    for (size_t i = 0; i < holders.size(); i++)
      threads.emplace_back([&, i] {
        try {
          while (!burst_done && !failed) holders[i]->pump(50ms);
        } catch (const std::exception &e) {
          ADD_FAILURE() << holders[i]->options().name << ": " << e.what();
          failed = true;
        }
      });
    /*
     * Under tiny shared memory, one more writer: pads of 6 kB on 40 events
     * per statement (the 1 MB cache must evict), every fourth statement on
     * 60 (past ectosync.max_xact_events, 50: a RELOAD marker).  At least
     * 8 statements a burst, however fast the other writers are.
     */
    if (testing_support::expect_pressure())
      threads.emplace_back([&, step] {
        testing_support::pressure_writer(
            conninfo,
            [](int limit) {
              return "UPDATE dom.events SET pad = repeat(md5(random()::text), 200) WHERE (id, "
                     "day) IN (SELECT id, day FROM dom.events ORDER BY random() LIMIT " +
                     std::to_string(limit) + ")";
            },
            [&](int i) { return i < 8 || statements.load() < target; }, failed,
            "pressure writer (step " + std::to_string(step) + ")");
      });
    /*
     * Half the bursts: a migration while the writers run (ADD COLUMN: their
     * statements go on unchanged; they write the column from the next
     * burst on).  Rows change before, while and after the ALTER waits for
     * its lock.
     */
    std::optional<Column> added_meanwhile;
    if (rng() % 2) {
      while (statements.load() < target / 2 && !failed) std::this_thread::sleep_for(2ms);
      Column c;
      std::cout << "  during burst " << step << ": " << add_column(admin, rng, counter, c)
                << std::endl;
      added_meanwhile = c;
    }
    for (int w = 0; w < kWriters; w++) threads[w].join();
    if (testing_support::expect_pressure()) threads.back().join();
    burst_done = true;
    for (auto &t : threads)
      if (t.joinable()) t.join();
    for (const auto &s : wstats) total.add(s);
    ASSERT_FALSE(failed);
    if (added_meanwhile) st.columns.push_back(*added_meanwhile);
    if (step == steps) break;

    /* a DDL step, then every holder equals a fresh load */
    std::string did = ddl_step(admin, rng, step, st, ids, counter);
    std::cout << "  step " << step << ": " << did << std::endl;
    auto check_start = pg::Clock::now();
    /* a session that holds a value right after the migration, before the
     * worker saw it, gets it fresh (a shared value of the old shape is stale) */
    {
      ectosync::HolderOptions o = holders[rng() % holders.size()]->options();
      std::string settings;
      o.conninfo = conninfo + random_settings(rng, &settings);
      o.mode = ectosync::HolderOptions::Mode::Held;
      o.name = "late holder " + std::to_string(step);
      ectosync::Holder late(o);
      late.start();
      if (!late.matches_fresh_load())
        ADD_FAILURE() << "seed " << seed << ", hold() right after DDL step " << step << " (" << did
                      << "): " << late.describe() << " in " << settings
                      << " differs from a fresh load:\n"
                      << testing_support::difference(late);
    }
    if (!check("after DDL step " + std::to_string(step) + " (" + did + ")")) failed = true;
    check_time += pg::Clock::now() - check_start;
  }
  ASSERT_FALSE(failed);
  std::cout << "domain oracle: " << total.transactions << " transactions, " << total.statements
            << " statements, " << total.rows << " rows changed, " << total.aborted << " aborted"
            << std::endl;
  EXPECT_GT(total.rows, changes / 4) << "the workload changed too little to test anything";
  EXPECT_TRUE(check("at the end"));

  int64_t reloads = 0;
  for (auto &h : holders) {
    const auto &s = h->stats();
    reloads += s.reloads;
    std::cout << "  " << h->options().name << ": " << s.notifications << " notifications, "
              << s.syncs << " syncs, " << s.reloads << " reloads (" << s.reloads_ze001
              << " forced), rows " << h->row_count() << std::endl;
  }
  /* every DDL step changed the rows of some held table: values reloaded */
  EXPECT_GT(reloads, 0) << "no value reloaded across the migrations";
  auto p = testing_support::pressure(admin);
  p.cache_evictions -= pressure_before.cache_evictions;
  std::cout << "domain oracle: "
            << std::chrono::duration_cast<std::chrono::milliseconds>(check_time).count()
            << " ms in the checks after DDL steps" << std::endl;
  std::cout << "domain oracle: " << p.reload_markers << " RELOAD markers, " << p.events_dropped
            << " events dropped, " << p.cache_evictions << " cache evictions" << std::endl;
  /* Under tiny shared memory the pressure must really have happened.
   * (Not that the cache evicted: that depends on how much of the queue
   * overflowed, which is timing's; see oracle_test.cpp.) */
  if (testing_support::expect_pressure()) {
    EXPECT_GT(p.reload_markers, 0) << "no queue overflow or bulk transaction";
  }
}

TEST(OracleDomain, KeysPartitionsMigrationsAndSettings) {
  domain_values_equal_fresh_loads(testing_support::seed_from_env());
}

/*
 * The check after a DDL step is not vacuous: a held and a stateless value
 * of the events (in sessions of other settings) that have not read their
 * changes since a RENAME COLUMN differ from a fresh load; then they
 * converge, the held one through a whole-value reply.
 */
TEST(OracleDomain, StaleAfterMigrationIsDetectedThenConverges) {
  testing_support::TestDatabase db("ectosync_client_oracle_domain");
  const std::string conninfo = db.conninfo();
  pg::Connection admin(conninfo);
  DomainState st;
  DomainIds ids;
  create_domain(admin, 5, st, ids);
  admin.exec(R"(SELECT ectosync.watch('dom.events', '["code", "notes"]'))");
  std::vector<std::unique_ptr<ectosync::Holder>> holders;
  for (auto mode :
       {ectosync::HolderOptions::Mode::Held, ectosync::HolderOptions::Mode::Stateless}) {
    ectosync::HolderOptions o;
    o.conninfo = conninfo +
                 " options='-c TimeZone=Asia/Kathmandu -c DateStyle=German -c "
                 "IntervalStyle=sql_standard -c extra_float_digits=-3'";
    o.table = "dom.events";
    o.assocs = R"(["code", "notes"])";
    o.mode = mode;
    holders.push_back(std::make_unique<ectosync::Holder>(o));
    holders.back()->start();
    EXPECT_TRUE(holders.back()->matches_fresh_load());
  }
  admin.exec("ALTER TABLE dom.events RENAME COLUMN v TO w");
  admin.exec("SELECT ectosync.wait_for_worker(10000)");
  for (auto &h : holders) {
    /* not pumped yet: the value has the old column name */
    EXPECT_FALSE(h->matches_fresh_load());
    EXPECT_TRUE(h->converge(20s));
    /* the events rows have w, not v (the codes nested in them keep their v) */
    auto r = h->connection().exec(
        "SELECT count(*) FILTER (WHERE r ? 'w' AND NOT r ? 'v'), count(*) FROM "
        "jsonb_array_elements($1::jsonb->'rows') r",
        {h->value()});
    EXPECT_GT(r.i64(0, 1), 0);
    EXPECT_EQ(r.i64(0, 0), r.i64(0, 1));
    EXPECT_GE(h->stats().reloads_ze001, 1) << "a migration reloads the value whole";
  }
}
