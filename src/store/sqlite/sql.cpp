#include "store/sqlite/sql.h"

#include <fmt/format.h>

#include "queue/message.h"

namespace sendq::store {

std::string Sql(std::string_view text) {
  auto n = [](auto value) { return static_cast<int>(value); };
  return fmt::format(fmt::runtime(text), fmt::arg("queued", n(MessageStatus::kQueued)),
                     fmt::arg("sending", n(MessageStatus::kSending)),
                     fmt::arg("sent", n(MessageStatus::kSent)),
                     fmt::arg("failed", n(MessageStatus::kFailed)),
                     fmt::arg("canceled", n(MessageStatus::kCanceled)),
                     fmt::arg("held_status", n(MessageStatus::kHeld)),
                     fmt::arg("outcome_sent", n(AttemptOutcome::kSent)),
                     fmt::arg("outcome_unknown", n(AttemptOutcome::kUnknown)),
                     fmt::arg("outcome_reconciled", n(AttemptOutcome::kReconciled)),
                     fmt::arg("high", n(Priority::kHigh)), fmt::arg("normal", n(Priority::kNormal)),
                     fmt::arg("bulk", n(Priority::kBulk)));
}

std::string StatusCondition(const std::vector<MessageStatus>& statuses) {
  if (statuses.empty()) return "";
  std::string sql = " AND status IN (";
  for (size_t i = 0; i < statuses.size(); ++i) {
    sql += fmt::format("{}{}", i == 0 ? "" : ", ", static_cast<int>(statuses[i]));
  }
  return sql + ")";
}

}  // namespace sendq::store
