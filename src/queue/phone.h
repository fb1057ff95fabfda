// Phone numbers as AgentPhone reads them: "in any format, normalised to E.164".
//
// Built on libphonenumber. A number in national format is read in the default region
// (--default-region, US unless set); one in international format in its own.
//
// Thread-safety: pure functions (libphonenumber's singleton is thread-safe).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sendq {

// True when `region` is a region libphonenumber knows ("US", "GB", ...).
bool IsKnownRegion(std::string_view region);

// `text` in E.164 ("+14155550100") when it is a possible phone number, read in
// `default_region` when it has no country code; nullopt when it is not one.
std::optional<std::string> NormalisePhone(std::string_view text, const std::string& default_region);

// The ISO 3166 region of an E.164 number ("US" for +1..., "GB" for +44...): the region of the
// number itself when libphonenumber can tell, else the main region of its country code; nullopt
// when it has none (or `e164` is not a phone number).
std::optional<std::string> RegionOfNumber(std::string_view e164);

}  // namespace sendq
