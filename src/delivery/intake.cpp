#include "delivery/intake.h"

#include <memory>

#include "queue/send_window.h"
#include "util/callback_url.h"
#include "util/json_fields.h"

namespace sendq::delivery {
namespace {}  // namespace

Intake::Intake(store::Store* store, Dispatcher* dispatcher, Metrics* metrics, IdGenerator* ids,
               ControlDefaults policy, RunawayGuards guards)
    : store_(store),
      dispatcher_(dispatcher),
      metrics_(metrics),
      ids_(ids),
      policy_(std::move(policy)),
      guards_(guards) {}

store::NewMessage Intake::Prepare(const std::string& producer,
                                  const std::optional<std::string>& idempotency_key,
                                  const ValidatedRequest& validated,
                                  const std::vector<ControlHeader>& headers,
                                  const nlohmann::json& loc_prefix,
                                  std::vector<FieldError>* errors) const {
  const nlohmann::json& request = validated.request;
  store::NewMessage nm;
  nm.id = ids_->Next();
  nm.producer = producer;
  nm.idempotency_key = idempotency_key;
  nm.request_json = validated.forwarded;
  nm.agent_id = StringMember(request, "agent_id");
  nm.to_number = StringMember(request, "to_number");
  // A reply to one of the producer's own messages waits for it, and is sent with its msg_ id.
  if (auto parent = StringMember(request, "reply_to_message_id"); parent && IsMessageId(*parent)) {
    nm.parent_id = parent;
  }
  if (guards_.enabled()) {
    nm.guards = guards_;
    nm.body_hash = BodyHash(StringMember(request, "body").value_or(""));
  }
  const size_t errors_before = errors->size();
  const QueueControls given =
      ParseQueueControls(validated.controls_member.is_null() ? nullptr : &validated.controls_member,
                         headers, loc_prefix, errors);
  // The rest depends on a valid request and valid controls.
  if (!validated.ok() || errors->size() > errors_before) return nm;
  const EffectiveControls controls =
      ResolveControls(given, request, MessageIdTime(nm.id), policy_, loc_prefix, errors);
  nm.expires_at = controls.expires_at;
  nm.ordering_key = controls.ordering_key;
  nm.sender = controls.sender;
  nm.priority = controls.priority;
  nm.send_at = controls.send_at;
  nm.first_due = controls.first_due;
  if (controls.send_window) {
    nm.send_window = SendWindowJson(*controls.send_window).dump();
    std::string zones;
    for (const std::string& zone : controls.window_zones) {
      zones += (zones.empty() ? "" : ",") + zone;
    }
    nm.window_zones = std::move(zones);
  }
  if (given.callback_url) {
    // Without resolving the host (this may run on the event loop): a name is vetted again,
    // resolved, before each delivery.
    const std::string problem = VetCallbackUrl(*given.callback_url, policy_.allow_http_callbacks,
                                               policy_.allow_private_callbacks, /*resolve=*/false);
    if (!problem.empty()) {
      nlohmann::json loc = loc_prefix;
      loc.push_back("sendq");
      loc.push_back("callback_url");
      errors->push_back(FieldError{loc, "Value error, callback_url " + problem, "value_error"});
      return nm;
    }
    nm.callback_url = given.callback_url;
  }
  nm.controls = given.ToJson().dump();
  return nm;
}

store::NewMessage Intake::PrepareReaction(const std::string& producer,
                                          const std::optional<std::string>& idempotency_key,
                                          const std::string& reaction_to,
                                          const std::string& reaction) const {
  store::NewMessage nm;
  nm.id = ids_->Next();
  nm.producer = producer;
  nm.idempotency_key = idempotency_key;
  nm.request_json = nlohmann::json{{"reaction", reaction}}.dump();
  nm.reaction_to = reaction_to;
  if (IsMessageId(reaction_to)) nm.parent_id = reaction_to;
  nm.expires_at = MessageIdTime(nm.id) + policy_.max_age;
  // The message reacted to is part of the fingerprint: the same key for another is a conflict.
  nm.controls = nlohmann::json{{"reaction_to", reaction_to}}.dump();
  return nm;
}

void Intake::Enqueue(store::NewMessage message, Done done) {
  // Shared, because the store keeps its callback in a std::function (copyable); the last copy
  // to go frees the worker if it was not handed the message.
  auto reservation = std::make_shared<WorkerReservation>(dispatcher_->ReserveIdleWorker());
  std::optional<store::ClaimOptions> claim;
  if (*reservation) claim = reservation->claim();
  store_->EnqueueAsync(
      std::move(message), claim,
      [this, reservation, done = std::move(done)](Result<store::EnqueueResult> result) {
        if (*reservation) {
          reservation->HandOff(result.ok() ? std::move(result->claimed)
                                           : std::optional<store::ClaimedMessage>());
        }
        if (result.ok() && result->added()) metrics_->CountEnqueued();
        done(std::move(result));
      });
}

Result<std::vector<Result<store::EnqueueResult>>> Intake::EnqueueBatch(
    const std::vector<store::NewMessage>& batch) {
  Result<std::vector<Result<store::EnqueueResult>>> stored = store_->EnqueueBatch(batch);
  if (stored.ok()) {
    int64_t added = 0;
    for (const Result<store::EnqueueResult>& item : *stored) {
      if (item.ok() && item->added()) ++added;
    }
    if (added > 0) metrics_->CountEnqueued(added);
  }
  return stored;
}

Result<Message> Intake::Retry(const std::string& producer, const std::string& id, TimeMs now) {
  return store_->Retry(producer, id, now, now + policy_.max_age);
}

}  // namespace sendq::delivery
