#include "pg.hpp"

#include <poll.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace pg {

int64_t Result::i64(int row, int col) const {
  if (is_null(row, col)) throw Error("NULL where a number was expected", "");
  return std::strtoll(PQgetvalue(res_.get(), row, col), nullptr, 10);
}

double Result::f64(int row, int col) const {
  if (is_null(row, col)) throw Error("NULL where a number was expected", "");
  return std::strtod(PQgetvalue(res_.get(), row, col), nullptr);
}

int Result::column(const char *name) const {
  return PQfnumber(res_.get(), name);
}

int64_t Result::affected() const {
  const char *n = PQcmdTuples(res_.get());
  return (n && *n) ? std::strtoll(n, nullptr, 10) : 0;
}

Connection::Connection(std::string conninfo, std::string application_name)
    : conninfo_(std::move(conninfo)), application_name_(std::move(application_name)) {
  open();
}

Connection::~Connection() {
  close();
}

Connection::Connection(Connection &&other) noexcept
    : conninfo_(std::move(other.conninfo_)),
      application_name_(std::move(other.application_name_)),
      conn_(other.conn_),
      prepared_(std::move(other.prepared_)) {
  other.conn_ = nullptr;
}

Connection &Connection::operator=(Connection &&other) noexcept {
  if (this != &other) {
    close();
    conninfo_ = std::move(other.conninfo_);
    application_name_ = std::move(other.application_name_);
    conn_ = other.conn_;
    prepared_ = std::move(other.prepared_);
    other.conn_ = nullptr;
  }
  return *this;
}

void Connection::open() {
  /* Keywords/values so that application_name and conninfo combine. */
  const char *keys[] = {"dbname", "application_name", "connect_timeout", nullptr};
  const char *vals[] = {conninfo_.c_str(),
                        application_name_.empty() ? nullptr : application_name_.c_str(), "10",
                        nullptr};
  conn_ = PQconnectdbParams(keys, vals, /*expand_dbname=*/1);
  if (!conn_ || PQstatus(conn_) != CONNECTION_OK) {
    std::string msg = conn_ ? PQerrorMessage(conn_) : "out of memory";
    close();
    throw ConnectionLost("connection failed: " + msg);
  }
  PQsetNoticeProcessor(
      conn_, [](void *, const char *) {}, nullptr);
}

void Connection::close() {
  if (conn_) PQfinish(conn_);
  conn_ = nullptr;
  prepared_.clear(); /* statements die with their session */
}

void Connection::reconnect() {
  close();
  open();
}

void Connection::lost(const std::string &what) {
  std::string msg = what + ": " + (conn_ ? PQerrorMessage(conn_) : "not connected");
  throw ConnectionLost(msg);
}

Result Connection::check(PGresult *raw, const std::string &sql) {
  Result res(raw);
  if (!raw) lost("query failed");
  auto status = PQresultStatus(raw);
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return res;
  if (PQstatus(conn_) != CONNECTION_OK) lost("connection lost");
  const char *state = PQresultErrorField(raw, PG_DIAG_SQLSTATE);
  std::string message = PQresultErrorMessage(raw);
  while (!message.empty() && message.back() == '\n') message.pop_back();
  std::string head = sql.substr(0, 160);
  throw Error(message + " [in: " + head + (sql.size() > 160 ? "...]" : "]"), state ? state : "");
}

Result Connection::exec(const std::string &sql) {
  if (!conn_) lost("exec");
  return check(PQexec(conn_, sql.c_str()), sql);
}

/* The parameters as libpq takes them (null: SQL NULL). */
static std::vector<const char *> text_values(const std::vector<Param> &params) {
  std::vector<const char *> values;
  values.reserve(params.size());
  for (const auto &p : params) values.push_back(p ? p->c_str() : nullptr);
  return values;
}

Result Connection::exec(const std::string &sql, const std::vector<Param> &params) {
  if (!conn_) lost("exec");
  std::vector<const char *> values = text_values(params);
  return check(PQexecParams(conn_, sql.c_str(), static_cast<int>(params.size()), nullptr,
                            values.data(), nullptr, nullptr, 0),
               sql);
}

Result Connection::exec_prepared(const std::string &sql, const std::vector<Param> &params) {
  if (!conn_) lost("exec");
  auto it = prepared_.find(sql);
  if (it == prepared_.end()) {
    std::string name = "ectosync_client_" + std::to_string(prepared_.size() + 1);
    check(PQprepare(conn_, name.c_str(), sql.c_str(), static_cast<int>(params.size()), nullptr),
          sql);
    it = prepared_.emplace(sql, name).first;
  }
  std::vector<const char *> values = text_values(params);
  return check(PQexecPrepared(conn_, it->second.c_str(), static_cast<int>(params.size()),
                              values.data(), nullptr, nullptr, 0),
               sql);
}

Result Connection::exec_binary_jsonb(const std::string &sql, const std::vector<Param> &params,
                                     const std::vector<bool> &jsonb_binary) {
  if (!conn_) lost("exec");
  std::vector<std::string> buffers(params.size());
  std::vector<const char *> values(params.size());
  std::vector<int> lengths(params.size()), formats(params.size());
  for (size_t i = 0; i < params.size(); i++) {
    if (!params[i]) continue;
    if (i < jsonb_binary.size() && jsonb_binary[i]) {
      buffers[i].reserve(params[i]->size() + 1);
      buffers[i].push_back('\1');
      buffers[i] += *params[i];
      formats[i] = 1;
    } else {
      buffers[i] = *params[i];
    }
    values[i] = buffers[i].data();
    lengths[i] = static_cast<int>(buffers[i].size());
  }
  return check(PQexecParams(conn_, sql.c_str(), static_cast<int>(params.size()), nullptr,
                            values.data(), lengths.data(), formats.data(), 0),
               sql);
}

std::vector<Notification> Connection::take_notifications() {
  std::vector<Notification> out;
  if (!conn_) lost("notifications");
  if (!PQconsumeInput(conn_)) lost("reading notifications");
  while (PGnotify *n = PQnotifies(conn_)) {
    out.push_back(Notification{n->relname, n->extra, n->be_pid, Clock::now()});
    PQfreemem(n);
  }
  return out;
}

std::optional<Notification> Connection::wait_notification(std::chrono::milliseconds timeout) {
  if (!conn_) lost("notifications");
  auto deadline = Clock::now() + timeout;
  for (;;) {
    if (PGnotify *n = PQnotifies(conn_)) {
      Notification out{n->relname, n->extra, n->be_pid, Clock::now()};
      PQfreemem(n);
      return out;
    }
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left < 0) return std::nullopt;
    pollfd pfd{PQsocket(conn_), POLLIN, 0};
    if (pfd.fd < 0) lost("no socket");
    int rc = ::poll(&pfd, 1, static_cast<int>(left));
    if (rc < 0 && errno != EINTR) lost(std::string("poll: ") + std::strerror(errno));
    if (rc > 0) {
      if (!PQconsumeInput(conn_)) lost("reading notifications");
      if (PQstatus(conn_) != CONNECTION_OK) lost("connection lost");
    } else if (rc == 0 && Clock::now() >= deadline) {
      /* one last look (a notification may have come with an earlier read) */
      if (PGnotify *n = PQnotifies(conn_)) {
        Notification out{n->relname, n->extra, n->be_pid, Clock::now()};
        PQfreemem(n);
        return out;
      }
      return std::nullopt;
    }
  }
}

std::string Connection::quote_ident(std::string_view ident) const {
  char *q = PQescapeIdentifier(conn_, ident.data(), ident.size());
  if (!q) throw Error("cannot quote identifier", "");
  std::string out(q);
  PQfreemem(q);
  return out;
}

std::string Connection::quote_literal(std::string_view literal) const {
  char *q = PQescapeLiteral(conn_, literal.data(), literal.size());
  if (!q) throw Error("cannot quote literal", "");
  std::string out(q);
  PQfreemem(q);
  return out;
}

Transaction::Transaction(Connection &conn, const char *begin) : conn_(conn) {
  conn_.exec(begin);
}

Transaction::~Transaction() {
  if (!open_) return;
  try {
    if (conn_.ok()) conn_.exec("ROLLBACK");
  } catch (...) {
    /* the connection is gone or unusable: nothing to roll back */
  }
}

void Transaction::commit() {
  open_ = false;
  conn_.exec("COMMIT");
}

std::optional<std::string> json_string_member(std::string_view json, std::string_view key) {
  std::string needle = "\"" + std::string(key) + "\"";
  size_t pos = 0;
  while ((pos = json.find(needle, pos)) != std::string_view::npos) {
    size_t i = pos + needle.size();
    while (i < json.size() && (json[i] == ' ' || json[i] == '\t')) i++;
    if (i >= json.size() || json[i] != ':') {
      pos = i;
      continue;
    }
    i++;
    while (i < json.size() && (json[i] == ' ' || json[i] == '\t')) i++;
    if (i >= json.size() || json[i] != '"') return std::nullopt;
    std::string out;
    for (i++; i < json.size(); i++) {
      char c = json[i];
      if (c == '"') return out;
      if (c == '\\' && i + 1 < json.size()) {
        char e = json[++i];
        switch (e) {
          case 'n':
            out.push_back('\n');
            break;
          case 't':
            out.push_back('\t');
            break;
          default:
            out.push_back(e); /* \" \\ \/ (no \u in our payloads) */
        }
      } else {
        out.push_back(c);
      }
    }
    return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace pg
