// Intake: how a validated request enters the queue, whatever front it came through.
//
// It turns the request and its queue controls into a message under the queue's policy (the
// validity from --max-age, the default send window and ordering), stores it, and when a worker
// is idle has the claim share the enqueue's commit so that the worker starts at once. The
// worker is held by a WorkerReservation, which ends exactly once whatever happens in between
// (an error, an exception, a replay): the HTTP layer holds no queue policy and no worker.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "delivery/dispatcher.h"
#include "delivery/metrics.h"
#include "queue/controls.h"
#include "queue/guards.h"
#include "queue/validation.h"
#include "store/store.h"
#include "util/ids.h"

namespace sendq::delivery {

class Intake {
 public:
  // `guards` (the runaway guards) are checked by the store as it stores each new message.
  Intake(store::Store* store, Dispatcher* dispatcher, Metrics* metrics, IdGenerator* ids,
         ControlDefaults policy, RunawayGuards guards = {});

  // A reaction to `reaction_to` (AgentPhone's msg_ id, or the producer's sq_ message, which it
  // then waits for), queued like a message. `reaction` is valid (ValidateReaction).
  store::NewMessage PrepareReaction(const std::string& producer,
                                    const std::optional<std::string>& idempotency_key,
                                    const std::string& reaction_to,
                                    const std::string& reaction) const;

  // A new message with a fresh id for `validated`, with its queue controls from the body's
  // `sendq` member and `headers`. Problems with the controls go to `errors`, located under
  // `loc_prefix`; the message is for the store only when `errors` gained none.
  store::NewMessage Prepare(const std::string& producer,
                            const std::optional<std::string>& idempotency_key,
                            const ValidatedRequest& validated,
                            const std::vector<ControlHeader>& headers,
                            const nlohmann::json& loc_prefix,
                            std::vector<FieldError>* errors) const;

  // Stores `message` without waiting: `done` gets the store's answer after the commit, on the
  // store's thread (it must be quick). A new message claimed with it is with its worker by then.
  using Done = std::function<void(Result<store::EnqueueResult>)>;
  void Enqueue(store::NewMessage message, Done done);
  // All of `batch` in one commit (see Store::EnqueueBatch).
  Result<std::vector<Result<store::EnqueueResult>>> EnqueueBatch(
      const std::vector<store::NewMessage>& batch);
  // A failed message queued again, valid for --max-age from `now`.
  Result<Message> Retry(const std::string& producer, const std::string& id, TimeMs now);

 private:
  store::Store* const store_;
  Dispatcher* const dispatcher_;
  Metrics* const metrics_;
  IdGenerator* const ids_;
  const ControlDefaults policy_;
  const RunawayGuards guards_;
};

}  // namespace sendq::delivery
