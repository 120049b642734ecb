/*
 * pg.hpp: a small RAII wrapper over libpq for the ecto_sync client, tests,
 * demo and benchmarks.
 *
 *   pg::Connection conn;                    // PG* environment variables
 *   auto r = conn.exec("SELECT $1::int + 1", {"41"});
 *   r.get(0, 0) == "42"
 *   conn.exec("LISTEN x");
 *   auto n = conn.wait_notification(std::chrono::milliseconds(500));
 *
 * Errors throw pg::Error with the SQLSTATE; a connection that broke throws
 * pg::ConnectionLost (a pg::Error), after which the Connection can be
 * reconnect()ed.
 */
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pg {

using Clock = std::chrono::steady_clock;
using Param = std::optional<std::string>; /* nullopt: SQL NULL */

class Error : public std::runtime_error {
 public:
  Error(const std::string &message, std::string sqlstate)
      : std::runtime_error(message), sqlstate_(std::move(sqlstate)) {}
  /* Five characters, or empty when the server sent none (client-side). */
  const std::string &sqlstate() const { return sqlstate_; }

 private:
  std::string sqlstate_;
};

class ConnectionLost : public Error {
 public:
  explicit ConnectionLost(const std::string &message) : Error(message, "08006") {}
};

/* An owned PGresult. */
class Result {
 public:
  Result() = default;
  explicit Result(PGresult *res) : res_(res, &PQclear) {}

  int rows() const { return res_ ? PQntuples(res_.get()) : 0; }
  int cols() const { return res_ ? PQnfields(res_.get()) : 0; }
  bool is_null(int row, int col) const { return PQgetisnull(res_.get(), row, col) != 0; }
  /* The text form of a field ("" for NULL: check is_null). */
  std::string_view get(int row, int col) const {
    return std::string_view(PQgetvalue(res_.get(), row, col),
                            static_cast<size_t>(PQgetlength(res_.get(), row, col)));
  }
  std::string str(int row, int col) const { return std::string(get(row, col)); }
  std::optional<std::string> opt(int row, int col) const {
    if (is_null(row, col)) return std::nullopt;
    return str(row, col);
  }
  int64_t i64(int row, int col) const;
  double f64(int row, int col) const;
  bool boolean(int row, int col) const { return get(row, col) == "t"; }
  int column(const char *name) const; /* -1 when absent */
  /* Rows a command affected (INSERT/UPDATE/DELETE), 0 otherwise. */
  int64_t affected() const;
  PGresult *raw() const { return res_.get(); }

 private:
  std::shared_ptr<PGresult> res_;
};

struct Notification {
  std::string channel;
  std::string payload;
  int sender_pid = 0;
  Clock::time_point received;
};

class Connection {
 public:
  /* conninfo: a libpq connection string; "" takes everything from PG*. */
  explicit Connection(std::string conninfo = "", std::string application_name = "");
  ~Connection();
  Connection(const Connection &) = delete;
  Connection &operator=(const Connection &) = delete;
  Connection(Connection &&other) noexcept;
  Connection &operator=(Connection &&other) noexcept;

  /* A simple query (may hold several statements: the last result is kept). */
  Result exec(const std::string &sql);
  /* An extended-protocol query with text parameters $1, $2, ... */
  Result exec(const std::string &sql, const std::vector<Param> &params);
  /*
   * The same with parameters sent in binary where binary[i] is true: for a
   * jsonb parameter the binary form is the version byte 1 then the text.
   */
  Result exec_binary_jsonb(const std::string &sql, const std::vector<Param> &params,
                           const std::vector<bool> &jsonb_binary);
  /*
   * exec(sql, params) through a statement this session prepared at the
   * first use of sql: a query made at every round trip is parsed and
   * planned once.
   */
  Result exec_prepared(const std::string &sql, const std::vector<Param> &params);

  /*
   * The next notification, waiting up to timeout for one (poll on the
   * socket).  nullopt when none came.  Throws ConnectionLost.
   */
  std::optional<Notification> wait_notification(std::chrono::milliseconds timeout);
  /* Every notification already received or readable without waiting. */
  std::vector<Notification> take_notifications();

  bool ok() const { return conn_ && PQstatus(conn_) == CONNECTION_OK; }
  int backend_pid() const { return conn_ ? PQbackendPID(conn_) : 0; }
  int socket() const { return conn_ ? PQsocket(conn_) : -1; }
  /* Close and open a new session with the same parameters. */
  void reconnect();
  void close();
  PGconn *raw() const { return conn_; }
  const std::string &conninfo() const { return conninfo_; }

  /* Quote an identifier or a literal for inclusion in SQL text. */
  std::string quote_ident(std::string_view ident) const;
  std::string quote_literal(std::string_view literal) const;

 private:
  void open();
  Result check(PGresult *res, const std::string &sql);
  [[noreturn]] void lost(const std::string &what);

  std::string conninfo_, application_name_;
  PGconn *conn_ = nullptr;
  std::map<std::string, std::string> prepared_; /* sql -> statement name, in this session */
};

/* A transaction block: BEGIN now, ROLLBACK in the destructor unless commit(). */
class Transaction {
 public:
  explicit Transaction(Connection &conn, const char *begin = "BEGIN");
  ~Transaction();
  Transaction(const Transaction &) = delete;
  Transaction &operator=(const Transaction &) = delete;
  void commit();

 private:
  Connection &conn_;
  bool open_ = true;
};

/* Extract a string member of a flat JSON object like a notification payload. */
std::optional<std::string> json_string_member(std::string_view json, std::string_view key);

}  // namespace pg
