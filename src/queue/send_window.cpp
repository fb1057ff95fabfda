#include "queue/send_window.h"

#include <date/tz.h>
#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "queue/phone.h"

namespace sendq {
namespace {

using std::chrono::milliseconds;
using std::chrono::minutes;

// "HH:MM", 00:00 to 23:59 (24:00 for an end at midnight); minutes after midnight.
std::optional<int> ParseClock(const std::string& s) {
  if (s.size() != 5 || s[2] != ':') return std::nullopt;
  for (size_t i : {0, 1, 3, 4}) {
    if (s[i] < '0' || s[i] > '9') return std::nullopt;
  }
  const int hours = (s[0] - '0') * 10 + (s[1] - '0');
  const int mins = (s[3] - '0') * 10 + (s[4] - '0');
  if (mins > 59) return std::nullopt;
  if (hours == 24 && mins == 0) return 24 * 60;
  if (hours > 23) return std::nullopt;
  return hours * 60 + mins;
}

std::string FormatClock(int minute) { return fmt::format("{:02}:{:02}", minute / 60, minute % 60); }

// Country code -> its zones, from the system's zone.tab (one line per zone).
const std::map<std::string, std::vector<std::string>>& CountryZones() {
  static const auto* zones = [] {
    auto* out = new std::map<std::string, std::vector<std::string>>();
    std::ifstream in("/usr/share/zoneinfo/zone.tab");
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      std::istringstream fields(line);
      std::string country, coordinates, zone;
      if (!(fields >> country >> coordinates >> zone)) continue;
      if (IsKnownTimeZone(zone)) (*out)[country].push_back(zone);
    }
    return out;
  }();
  return *zones;
}

bool Contains(const SendWindow& w, int minute) {
  if (w.start_minute < w.end_minute) return minute >= w.start_minute && minute < w.end_minute;
  return minute >= w.start_minute || minute < w.end_minute;  // across midnight
}

// When `window` next opens in `zone` at or after `t`, or `t` itself when it is open then.
TimeMs OpensInZoneAt(const SendWindow& window, const date::time_zone* zone, TimeMs t) {
  const date::sys_time<milliseconds> sys{milliseconds{t}};
  const auto local = zone->to_local(sys);
  const auto day = date::floor<date::days>(local);
  const int minute = static_cast<int>(std::chrono::duration_cast<minutes>(local - day).count());
  if (Contains(window, minute)) return t;
  // Closed: the window opens next at its start, today or (past today's end) tomorrow.
  auto opens = day + minutes{window.start_minute};
  if (opens <= local) opens += date::days{1};
  // A start that falls in a spring-forward gap opens when the gap ends.
  const auto at = zone->to_sys(date::floor<milliseconds>(opens), date::choose::earliest);
  return std::max<TimeMs>(t + 1, at.time_since_epoch().count());
}

}  // namespace

std::optional<SendWindow> ParseSendWindow(const nlohmann::json& value, std::string* problem) {
  if (value.is_string() && value.get<std::string>() == "recipient") return RecipientHours();
  if (!value.is_object()) {
    *problem =
        "send_window must be \"recipient\" or an object such as {\"start\": \"08:00\", \"end\": "
        "\"21:00\", \"tz\": \"America/Chicago\"}";
    return std::nullopt;
  }
  SendWindow window;
  for (auto it = value.begin(); it != value.end(); ++it) {
    if (it.key() != "start" && it.key() != "end" && it.key() != "tz") {
      *problem = fmt::format("send_window has no field {}; it takes start, end and tz",
                             nlohmann::json(it.key()).dump());
      return std::nullopt;
    }
  }
  for (const char* name : {"start", "end"}) {
    auto it = value.find(name);
    std::optional<int> minute;
    if (it != value.end() && it->is_string()) minute = ParseClock(it->get<std::string>());
    if (!minute || (*minute == 24 * 60 && std::string(name) == "start")) {
      *problem =
          fmt::format("send_window.{} must be a local time \"HH:MM\" (00:00 to 23:59)", name);
      return std::nullopt;
    }
    (std::string(name) == "start" ? window.start_minute : window.end_minute) = *minute % (24 * 60);
  }
  if (window.start_minute == window.end_minute) {
    *problem = "send_window.start and send_window.end must differ: the window would be empty";
    return std::nullopt;
  }
  if (auto tz = value.find("tz"); tz != value.end() && !tz->is_null()) {
    if (!tz->is_string() || !IsKnownTimeZone(tz->get<std::string>())) {
      *problem = "send_window.tz must be a time zone of the tz database, such as America/Chicago";
      return std::nullopt;
    }
    window.tz = tz->get<std::string>();
  }
  return window;
}

nlohmann::json SendWindowJson(const SendWindow& window) {
  nlohmann::json out = {{"start", FormatClock(window.start_minute)},
                        {"end", FormatClock(window.end_minute)}};
  if (!window.tz.empty()) out["tz"] = window.tz;
  return out;
}

bool IsKnownTimeZone(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  try {
    return date::locate_zone(name) != nullptr;
  } catch (const std::exception&) {
    return false;
  }
}

std::vector<std::string> WindowZones(const SendWindow& window,
                                     const std::vector<std::string>& recipients) {
  if (!window.tz.empty()) return {window.tz};
  std::vector<std::string> zones;
  for (const std::string& recipient : recipients) {
    std::optional<std::string> region = RegionOfNumber(recipient);
    if (!region) continue;
    auto it = CountryZones().find(*region);
    if (it == CountryZones().end()) continue;
    for (const std::string& zone : it->second) {
      if (std::find(zones.begin(), zones.end(), zone) == zones.end()) zones.push_back(zone);
    }
  }
  return zones;
}

std::optional<TimeMs> WindowOpenAt(const SendWindow& window, const std::vector<std::string>& zones,
                                   TimeMs t) {
  std::vector<const date::time_zone*> resolved;
  for (const std::string& name : zones) {
    // A zone the tz database no longer has (it changed since the message was queued) is
    // skipped rather than allowed to throw.
    if (IsKnownTimeZone(name)) resolved.push_back(date::locate_zone(name));
  }
  if (resolved.empty()) return t;
  const TimeMs horizon = t + kWindowHorizon;
  // Move to the latest opening among the zones that are closed, until none is.
  while (t <= horizon) {
    TimeMs latest = t;
    for (const date::time_zone* zone : resolved) {
      latest = std::max(latest, OpensInZoneAt(window, zone, t));
    }
    if (latest == t) return t;
    t = latest;
  }
  return std::nullopt;
}

}  // namespace sendq
