/*
 * spi.hpp: SPI from C++: a session with the pinned settings
 * (sql_context.hpp), queries with parameters, rows as text, identifier
 * quoting.  Used by the catalog, load() and watch().
 */
#pragma once

#include "pg/pg_boundary.hpp"
#include "pg/sql_context.hpp"

extern "C" {
#include "postgres.h"
#include "utils/jsonb.h"
}

#include <exception>
#include <optional>
#include <string>
#include <vector>

namespace ectosync {

/*
 * An SPI connection for the lifetime of the object, with the pinned
 * settings (sql_context.hpp) that every query ecto_sync generates runs
 * under.  When a PgError unwinds it, SPI_finish is skipped: the error
 * aborts the transaction, which cleans SPI up.
 */
class SpiScope {
 public:
  SpiScope();
  ~SpiScope();
  SpiScope(const SpiScope &) = delete;
  SpiScope &operator=(const SpiScope &) = delete;

 private:
  int exceptions_ = std::uncaught_exceptions();
  PinnedSettings pinned_;
};

/* A relation's name as regclass prints it for the caller (qualified unless
 * the caller's search_path finds it); its oid when it is gone. */
std::string relation_name(uint32_t relid);

/* A query parameter: a type oid (TEXTOID, OIDOID, ...) and its text form. */
struct SpiParam {
  Oid type;
  std::optional<std::string> value; /* nullopt: SQL NULL */
};

using SpiRow = std::vector<std::optional<std::string>>;

/* Runs sql (inside an SpiScope); returns SPI's result code (SPI_tuptable holds rows). */
int spi_execute(const std::string &sql, const std::vector<SpiParam> &params, bool read_only);
/* The same through a generic plan the backend keeps (keyed queries repeated often). */
int spi_execute_saved(const std::string &sql, const std::vector<SpiParam> &params, bool read_only);

/* Runs sql (inside an SpiScope) and returns every row's columns as text. */
std::vector<SpiRow> spi_rows(const std::string &sql, const std::vector<SpiParam> &params,
                             bool read_only);

/* Runs a command (inside an SpiScope); raises on failure. */
void spi_exec(const std::string &sql, const std::vector<SpiParam> &params = {});

/* quote_identifier() as a std::string. */
std::string quote_ident(const std::string &name);

/* The text of a jsonb value (JsonbToCString). */
std::string jsonb_text(const Jsonb *value);

}  // namespace ectosync
