// Send windows: the local hours in which a message may go out ("08:00" to "21:00").
//
// A window is read in one IANA time zone (`tz`) or, without one, in the zones of the
// recipient's country from the system time-zone database (zone.tab): when the country has
// several zones, the window must be open in all of them, so that a message is never early or
// late anywhere in that country. Time-zone rules come from the date library over the OS tzdata.
//
// Thread-safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/clock.h"

namespace sendq {

struct SendWindow {
  int start_minute = 0;  // minutes after local midnight, 0..1439
  int end_minute = 0;    // exclusive; below start_minute for a window across midnight
  std::string tz;        // an IANA zone; empty: the zones of the recipient's country

  bool operator==(const SendWindow&) const = default;
};

// "recipient": 08:00 to 21:00 in the recipient's zones, the hours the US TCPA allows.
inline SendWindow RecipientHours() { return SendWindow{8 * 60, 21 * 60, ""}; }

// {"start":"08:00","end":"21:00","tz":"America/Chicago"} (tz optional: the recipient's zones)
// or "recipient". The problem with `value` when it is not a window.
std::optional<SendWindow> ParseSendWindow(const nlohmann::json& value, std::string* problem);
// The canonical form: {"start":"HH:MM","end":"HH:MM"} with "tz" when it has one.
nlohmann::json SendWindowJson(const SendWindow& window);

// True when `name` is a zone in the system time-zone database.
bool IsKnownTimeZone(const std::string& name);

// The zones `window` is read in for a message to `recipients` (E.164 numbers; others are
// skipped): its tz, or every zone of each recipient's country. Empty when none is known.
std::vector<std::string> WindowZones(const SendWindow& window,
                                     const std::vector<std::string>& recipients);

// How far ahead WindowOpenAt looks before it gives up.
inline constexpr DurationMs kWindowHorizon = 8LL * 24 * 3600 * 1000;

// The first instant at or after `t` at which `window` is open in every zone of `zones`;
// nullopt when it does not open within kWindowHorizon (the zones' windows never overlap).
// Zones the tz database does not know are skipped; with none left, `t`.
std::optional<TimeMs> WindowOpenAt(const SendWindow& window, const std::vector<std::string>& zones,
                                   TimeMs t);

}  // namespace sendq
