// Structured logs: one JSON object per line on stderr.
//
// Callers pass fields as JSON. Never pass tokens, and pass message bodies only at debug level.
//
// Thread-safety: every function may be called from any thread; lines never interleave.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

namespace sendq::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void SetLevel(Level level);
bool ParseLevel(std::string_view text, Level* out);
bool Enabled(Level level);

void Write(Level level, std::string_view event, nlohmann::json fields = nlohmann::json::object());

inline void Debug(std::string_view event, nlohmann::json fields = nlohmann::json::object()) {
  if (Enabled(Level::kDebug)) Write(Level::kDebug, event, std::move(fields));
}
inline void Info(std::string_view event, nlohmann::json fields = nlohmann::json::object()) {
  Write(Level::kInfo, event, std::move(fields));
}
inline void Warn(std::string_view event, nlohmann::json fields = nlohmann::json::object()) {
  Write(Level::kWarn, event, std::move(fields));
}
inline void Error(std::string_view event, nlohmann::json fields = nlohmann::json::object()) {
  Write(Level::kError, event, std::move(fields));
}

}  // namespace sendq::log
