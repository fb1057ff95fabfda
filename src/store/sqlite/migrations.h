// Schema migrations: schema/NNNN_name.sql files, embedded at build time and applied in order at
// start-up. The applied version lives in the database (PRAGMA user_version).
#pragma once

#include <string>
#include <vector>

namespace sendq::store {

struct Migration {
  int version;       // from the file name; versions are stored on disk: never renumber
  const char* name;  // the file name, for messages
  const char* sql;
};

// In ascending version order.
const std::vector<Migration>& EmbeddedMigrations();

}  // namespace sendq::store
