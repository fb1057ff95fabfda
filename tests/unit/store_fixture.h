// A SqliteStore on a real file in a temporary directory, for store-level tests.
#pragma once

#include <memory>
#include <string>

#include "store/sqlite/sqlite_store.h"
#include "testutil.h"
#include "util/clock.h"
#include "util/ids.h"

namespace sendq::test {

class StoreFixture {
 public:
  StoreFixture() : ids_(&clock_) { Reopen(); }

  void Reopen() {
    store_.reset();
    auto opened = store::OpenSqliteStore(path(), store::StoreOptions{}, &clock_);
    if (!opened.ok()) throw std::runtime_error(opened.status().ToString());
    store_ = std::move(*opened);
  }
  void Close() { store_.reset(); }

  std::string path() const { return dir_.File("sendq.db"); }
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
  TempDir dir_;
  FakeClock clock_;
  IdGenerator ids_;
  std::unique_ptr<store::Store> store_;
};

}  // namespace sendq::test
