// SQL text that names the numbers stored on disk (MessageStatus, AttemptOutcome, Priority in
// queue/message.h) instead of spelling them as literals.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "queue/message.h"

namespace sendq::store {

// `text` with {queued}, {sending}, {sent}, {failed}, {canceled} (MessageStatus),
// {outcome_sent}, {outcome_unknown} (AttemptOutcome) and {high}, {normal}, {bulk} (Priority)
// replaced by their numbers. The numbers are written as literals, so a query still matches the
// WHERE clause of a partial index. Meant for statics: `static const std::string sql = Sql(...)`.
std::string Sql(std::string_view text);

// " AND status IN (0, 3)": a condition on any of `statuses`, as literals (each list of them is
// its own cached statement). Empty: no condition.
std::string StatusCondition(const std::vector<MessageStatus>& statuses);

}  // namespace sendq::store
