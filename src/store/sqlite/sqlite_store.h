// The SQLite implementation of the store contract (store/store.h): one writer thread with group
// commit (writer.h), a pool of reader connections, and the schema in schema/*.sql.
#pragma once

#include <memory>
#include <string>

#include "store/store.h"
#include "util/clock.h"
#include "util/status.h"

namespace sendq::store {

struct StoreOptions {
  bool synchronous_full = true;
  // Read connections open at once, at most; a read beyond them waits for one to be free.
  int max_readers = 32;
  // Zero what is deleted or overwritten (for redaction), at some cost in writes.
  bool secure_delete = false;
};

// Opens or creates the database at `path`, applies pending migrations and takes an exclusive
// lock on `path` + ".lock" (one sendq per database). Because no other process can hold
// leases, leases left by an earlier process are voided: its `sending` messages are recovered
// by the first Claim.
Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path, StoreOptions options,
                                               const Clock* clock);

// The schema version a database file is at (0 for a new file), for tests and tools.
Result<int> SchemaVersion(const std::string& path);

}  // namespace sendq::store
