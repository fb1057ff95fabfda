// The store tests' fixture. Tests of the store contract are TEST_CASE_TEMPLATEs over
// SENDQ_STORE_BACKENDS, so that every backend passes the same suite; tests of one backend's
// own behaviour (SQLite's file, lock and migrations) use its fixture directly.
#pragma once

#include <memory>
#include <string>

#include "store/sqlite/sqlite_store.h"
#include "testutil.h"
#include "util/clock.h"
#include "util/ids.h"

namespace sendq::test {

// A SqliteStore on a real file in a temporary directory.
class SqliteBackend {
 public:
  Result<std::unique_ptr<store::Store>> Open(const Clock* clock) {
    return store::OpenSqliteStore(path(), store::StoreOptions{}, clock);
  }
  std::string path() const { return dir_.File("sendq.db"); }

 private:
  TempDir dir_;
};

// Every backend the contract tests run against.
#define SENDQ_STORE_BACKENDS ::sendq::test::SqliteBackend

// A fresh, empty store of `Backend`, which Reopen() opens again on the same data (a restart).
template <typename Backend>
class StoreFixtureFor {
 public:
  StoreFixtureFor() : ids_(&clock_) { Reopen(); }

  void Reopen() {
    store_.reset();
    auto opened = backend_.Open(&clock_);
    if (!opened.ok()) throw std::runtime_error(opened.status().ToString());
    store_ = std::move(*opened);
  }
  void Close() { store_.reset(); }

  Backend& backend() { return backend_; }
  store::Store& store() { return *store_; }
  FakeClock& clock() { return clock_; }

  store::NewMessage NewMessage(const std::string& producer = "alice",
                               std::optional<std::string> key = std::nullopt,
                               const std::string& to = "+14155552671",
                               const std::string& body = "hello") {
    store::NewMessage nm;
    nm.id = ids_.Next();
    nm.producer = producer;
    nm.idempotency_key = std::move(key);
    nm.request_json =
        nlohmann::json({{"agent_id", "agent_1"}, {"to_number", to}, {"body", body}}).dump();
    nm.agent_id = "agent_1";
    nm.to_number = to;
    nm.expires_at = clock_.NowMs() + 3'600'000;
    return nm;
  }

  Message Enqueue(const std::string& producer = "alice") {
    auto r = store_->Enqueue(NewMessage(producer));
    if (!r.ok()) throw std::runtime_error(r.status().ToString());
    return r->message;
  }

  store::ClaimOptions ClaimAt(int limit = 10) const {
    store::ClaimOptions o;
    o.now = clock_.NowMs();
    o.limit = limit;
    o.lease = 60'000;
    o.max_attempts = 3;
    return o;
  }

 private:
  Backend backend_;
  FakeClock clock_;
  IdGenerator ids_;
  std::unique_ptr<store::Store> store_;
};

class StoreFixture : public StoreFixtureFor<SqliteBackend> {
 public:
  std::string path() { return backend().path(); }
};

}  // namespace sendq::test
