#include "queue/phone.h"

#include <phonenumbers/phonenumberutil.h>

namespace sendq {
namespace {

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

// A phone number is short; anything longer is not one, and is not worth parsing.
constexpr size_t kMaxPhoneText = 64;

const PhoneNumberUtil& Util() { return *PhoneNumberUtil::GetInstance(); }

}  // namespace

bool IsKnownRegion(std::string_view region) {
  return Util().GetCountryCodeForRegion(std::string(region)) != 0;
}

std::optional<std::string> NormalisePhone(std::string_view text,
                                          const std::string& default_region) {
  if (text.empty() || text.size() > kMaxPhoneText) return std::nullopt;
  PhoneNumber number;
  if (Util().Parse(std::string(text), default_region, &number) !=
      PhoneNumberUtil::NO_PARSING_ERROR) {
    return std::nullopt;
  }
  // IS_POSSIBLE only: a number that is possible only locally (seven digits in the US) has no
  // E.164 form.
  if (Util().IsPossibleNumberWithReason(number) != PhoneNumberUtil::IS_POSSIBLE) {
    return std::nullopt;
  }
  std::string out;
  Util().Format(number, PhoneNumberUtil::E164, &out);
  return out;
}

std::optional<std::string> RegionOfNumber(std::string_view e164) {
  if (e164.empty() || e164[0] != '+' || e164.size() > kMaxPhoneText) return std::nullopt;
  PhoneNumber number;
  if (Util().Parse(std::string(e164), "ZZ", &number) != PhoneNumberUtil::NO_PARSING_ERROR) {
    return std::nullopt;
  }
  std::string region;
  Util().GetRegionCodeForNumber(number, &region);
  if (region.empty() || region == "ZZ" || region == "001") {
    Util().GetRegionCodeForCountryCode(number.country_code(), &region);
  }
  if (region.empty() || region == "ZZ" || region == "001") return std::nullopt;
  return region;
}

}  // namespace sendq
