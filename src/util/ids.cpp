#include "util/ids.h"

#include <array>

namespace sendq {
namespace {

constexpr char kAlphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";
constexpr size_t kBodyLength = 26;
constexpr size_t kPrefixLength = sizeof(kMessageIdPrefix) - 1;

int DecodeChar(char c) {
  for (int i = 0; i < 32; ++i) {
    if (kAlphabet[i] == c) return i;
  }
  return -1;
}

// 128 bits: 48-bit time, then 80 random bits (hi 16 + lo 64), 130 bits of base32 with the
// top two bits zero.
std::string Encode(TimeMs ms, uint64_t random_hi, uint64_t random_lo) {
  std::array<uint8_t, 16> bytes{};
  for (int i = 0; i < 6; ++i) bytes[i] = static_cast<uint8_t>(ms >> (8 * (5 - i)));
  bytes[6] = static_cast<uint8_t>(random_hi >> 8);
  bytes[7] = static_cast<uint8_t>(random_hi);
  for (int i = 0; i < 8; ++i) bytes[8 + i] = static_cast<uint8_t>(random_lo >> (8 * (7 - i)));
  std::string out(kMessageIdPrefix);
  out.resize(kPrefixLength + kBodyLength);
  // Read 5 bits at a time from a 130-bit number whose top 2 bits are zero.
  for (size_t i = 0; i < kBodyLength; ++i) {
    int bit = static_cast<int>(i) * 5 - 2;  // position of the first bit in the 128-bit value
    int value = 0;
    for (int b = 0; b < 5; ++b, ++bit) {
      value <<= 1;
      if (bit >= 0) value |= (bytes[bit / 8] >> (7 - bit % 8)) & 1;
    }
    out[kPrefixLength + i] = kAlphabet[value];
  }
  return out;
}

}  // namespace

IdGenerator::IdGenerator(const Clock* clock) : clock_(clock), rng_(std::random_device{}()) {}

std::string IdGenerator::Next() {
  MutexLock guard(&mu_);
  TimeMs now = clock_->NowMs();
  if (now > last_ms_) {
    last_ms_ = now;
    last_random_hi_ = rng_() & 0x7fff;  // leave headroom so increments do not overflow
    last_random_lo_ = rng_();
  } else {
    // Same (or an earlier) millisecond: keep the time and count up, so ids stay ordered.
    if (++last_random_lo_ == 0) ++last_random_hi_;
  }
  return Encode(last_ms_, last_random_hi_, last_random_lo_);
}

bool IsMessageId(const std::string& id) {
  if (id.size() != kPrefixLength + kBodyLength) return false;
  if (id.compare(0, kPrefixLength, kMessageIdPrefix) != 0) return false;
  if (DecodeChar(id[kPrefixLength]) > 7) return false;  // only 3 bits fit in the first char
  for (size_t i = kPrefixLength; i < id.size(); ++i) {
    if (DecodeChar(id[i]) < 0) return false;
  }
  return true;
}

TimeMs MessageIdTime(const std::string& id) {
  // The first 10 characters carry 50 bits: 2 zero bits and the 48-bit time.
  TimeMs t = 0;
  for (size_t i = 0; i < 10; ++i) t = (t << 5) | DecodeChar(id[kPrefixLength + i]);
  return t;
}

std::string MinMessageIdAt(TimeMs t) { return Encode(t < 0 ? 0 : t, 0, 0); }

}  // namespace sendq
