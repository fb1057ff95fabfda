#include "cli/output.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "util/ascii.h"
#include "util/time_format.h"

namespace sendq::cli {
namespace {

constexpr std::string_view kEllipsis = "\u2026";

bool IsContinuationByte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Edit distance with adjacent transpositions (optimal string alignment).
size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

// "body.media_urls[0]" from ["body", "media_urls", 0].
std::string LocText(const nlohmann::json& loc) {
  if (!loc.is_array()) return loc.is_string() ? loc.get<std::string>() : loc.dump();
  std::string out;
  for (const nlohmann::json& part : loc) {
    if (part.is_number_integer()) {
      out += fmt::format("[{}]", part.get<int64_t>());
    } else {
      if (!out.empty()) out += '.';
      out += part.is_string() ? part.get<std::string>() : part.dump();
    }
  }
  return out;
}

std::string GroupThousands(uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// Reads "YYYY-MM-DD", "YYYY-MM-DD HH:MM" or "YYYY-MM-DD HH:MM:SS" (T or space) as local time.
std::optional<time_t> ParseLocalTime(const std::string& text) {
  if (text.size() != 10 && text.size() != 16 && text.size() != 19) return std::nullopt;
  auto number = [&](size_t pos, size_t count, int& out) {
    out = 0;
    for (size_t i = pos; i < pos + count; ++i) {
      if (text[i] < '0' || text[i] > '9') return false;
      out = out * 10 + (text[i] - '0');
    }
    return true;
  };
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!number(0, 4, year) || text[4] != '-' || !number(5, 2, month) || text[7] != '-' ||
      !number(8, 2, day)) {
    return std::nullopt;
  }
  if (text.size() > 10) {
    if (text[10] != 'T' && text[10] != 't' && text[10] != ' ') return std::nullopt;
    if (!number(11, 2, hour) || text[13] != ':' || !number(14, 2, minute)) return std::nullopt;
    if (text.size() == 19 && (text[16] != ':' || !number(17, 2, second))) return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59) {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  tm.tm_isdst = -1;  // the zone's rules decide, as they do for the times shown
  const time_t t = std::mktime(&tm);
  if (t == static_cast<time_t>(-1) || tm.tm_mday != day) return std::nullopt;
  return t;
}

}  // namespace

int ExitCodeForHttpStatus(int http_status) {
  if (http_status == 0) return kExitUnreachable;
  if (http_status >= 200 && http_status < 300) return kExitOk;
  switch (http_status) {
    case 401:
    case 403:
      return kExitAuth;
    case 404:
      return kExitNotFound;
    case 400:
    case 409:
    case 413:
    case 422:
      return kExitRefused;
    default:
      break;
  }
  if (http_status >= 500) return kExitUnreachable;
  return kExitError;
}

std::string FormatLocalTime(const std::string& rfc3339, bool with_zone) {
  const std::optional<TimeMs> parsed = ParseRfc3339(rfc3339);
  if (!parsed) return rfc3339;
  TimeMs ms = *parsed;
  time_t secs = static_cast<time_t>(ms / 1000);
  if (ms < 0 && ms % 1000 != 0) --secs;
  std::tm tm{};
  if (localtime_r(&secs, &tm) == nullptr) return rfc3339;
  char buffer[64];
  const char* format = with_zone ? "%Y-%m-%d %H:%M:%S %Z" : "%Y-%m-%d %H:%M:%S";
  const size_t n = std::strftime(buffer, sizeof(buffer), format, &tm);
  return n == 0 ? rfc3339 : std::string(buffer, n);
}

std::string TimeArgumentForApi(const std::string& text) {
  if (AllDigits(text) || ParseRfc3339(text)) return text;
  const std::optional<time_t> local = ParseLocalTime(text);
  if (!local) return text;
  return FormatRfc3339(static_cast<TimeMs>(*local) * 1000);
}

std::string FormatAge(double seconds) {
  const int64_t s = seconds > 0 ? static_cast<int64_t>(seconds) : 0;
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  if (s < 86400) return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
  return fmt::format("{}d{:02}h", s / 86400, (s % 86400) / 3600);
}

std::string HumanBytes(uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  double value = static_cast<double>(bytes) / 1024.0;
  size_t unit = 0;
  while (value >= 1024.0 && unit + 1 < std::size(kUnits)) {
    value /= 1024.0;
    ++unit;
  }
  return fmt::format("{:.1f} {}", value, kUnits[unit]);
}

size_t DisplayWidth(std::string_view text) {
  size_t width = 0;
  for (char c : text) width += IsContinuationByte(c) ? 0 : 1;
  return width;
}

std::string CellText(std::string_view text, size_t max_width) {
  std::string clean(text);
  for (char& c : clean) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = ' ';
  }
  if (max_width == 0 || DisplayWidth(clean) <= max_width) return clean;
  // Keep max_width - 1 characters, then the ellipsis.
  size_t kept = 0;
  size_t cut = 0;
  while (cut < clean.size()) {
    if (!IsContinuationByte(clean[cut])) {
      if (kept == max_width - 1) break;
      ++kept;
    }
    ++cut;
  }
  return clean.substr(0, cut) + std::string(kEllipsis);
}

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(columns_.size());
  for (size_t i = 0; i < cells.size(); ++i) cells[i] = CellText(cells[i], columns_[i].max_width);
  rows_.push_back(std::move(cells));
}

std::string Table::Render() const {
  std::vector<size_t> widths(columns_.size());
  for (size_t i = 0; i < columns_.size(); ++i) {
    widths[i] = DisplayWidth(columns_[i].header);
    for (const auto& row : rows_) widths[i] = std::max(widths[i], DisplayWidth(row[i]));
  }
  std::string out;
  auto append_row = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (size_t i = 0; i < cells.size(); ++i) {
      const size_t pad = widths[i] - DisplayWidth(cells[i]);
      const bool last = i + 1 == cells.size();
      if (i > 0) line += "  ";
      if (columns_[i].align_right) {
        line.append(pad, ' ');
        line += cells[i];
      } else {
        line += cells[i];
        if (!last) line.append(pad, ' ');
      }
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line;
    out += '\n';
  };
  std::vector<std::string> headers;
  for (const Column& c : columns_) headers.push_back(c.header);
  append_row(headers);
  for (const auto& row : rows_) append_row(row);
  return out;
}

std::string Suggest(const std::string& typed, const std::vector<std::string>& candidates) {
  const std::string word = AsciiLower(typed);
  if (word.empty()) return "";
  std::string prefix_match;
  int prefix_matches = 0;
  for (const std::string& c : candidates) {
    if (c.size() > word.size() && c.compare(0, word.size(), word) == 0) {
      prefix_match = c;
      ++prefix_matches;
    }
  }
  if (prefix_matches == 1 && word.size() >= 2) return prefix_match;
  const size_t limit = std::clamp<size_t>(word.size() / 3, 1, 2);
  std::string best;
  size_t best_distance = limit + 1;
  for (const std::string& c : candidates) {
    const size_t d = EditDistance(word, c);
    if (d < best_distance) {
      best = c;
      best_distance = d;
    }
  }
  return best;
}

std::string DescribeHttpError(int http_status, const std::string& body) {
  const nlohmann::json parsed = nlohmann::json::parse(body, nullptr, false);
  if (parsed.is_object()) {
    const auto detail = parsed.find("detail");
    if (detail != parsed.end() && detail->is_string()) {
      std::string out = detail->get<std::string>();
      const auto code = parsed.find("code");
      if (code != parsed.end() && code->is_string()) {
        out += fmt::format(" ({}, HTTP {})", code->get<std::string>(), http_status);
      } else {
        out += fmt::format(" (HTTP {})", http_status);
      }
      return out;
    }
    if (detail != parsed.end() && detail->is_array()) {
      std::string out = fmt::format("the request was refused (HTTP {}):", http_status);
      for (const nlohmann::json& item : *detail) {
        std::string loc;
        std::string msg;
        if (item.is_object()) {
          if (item.contains("loc")) loc = LocText(item["loc"]);
          if (item.contains("msg") && item["msg"].is_string()) msg = item["msg"];
        } else {
          msg = item.is_string() ? item.get<std::string>() : item.dump();
        }
        out += "\n  ";
        out += loc.empty() ? msg : loc + ": " + msg;
      }
      return out;
    }
  }
  std::string text = CellText(body, 200);
  while (!text.empty() && text.back() == ' ') text.pop_back();
  if (text.empty()) return fmt::format("HTTP {}", http_status);
  return fmt::format("HTTP {}: {}", http_status, text);
}

namespace {

// "[#######.......]  45%": how much of `total` is done.
std::string ProgressBar(uint64_t done, uint64_t total) {
  constexpr int kBarWidth = 20;
  done = std::min(done, total);
  const int percent = static_cast<int>(done * 100 / total);
  const int filled = static_cast<int>(done * kBarWidth / total);
  return fmt::format("[{}{}] {:3}%", std::string(filled, '#'), std::string(kBarWidth - filled, '.'),
                     percent);
}

}  // namespace

std::string FormatCountProgress(uint64_t done, uint64_t total, const char* unit) {
  if (total == 0) return fmt::format("{} {}", GroupThousands(done), unit);
  return fmt::format("{}  {} / {} {}", ProgressBar(done, total), GroupThousands(done),
                     GroupThousands(total), unit);
}

std::string FormatProgress(uint64_t bytes, std::optional<uint64_t> total,
                           std::optional<uint64_t> lines) {
  std::string out;
  if (total && *total > 0) {
    out = fmt::format("{}  {} / {}", ProgressBar(bytes, *total), HumanBytes(bytes),
                      HumanBytes(*total));
  } else {
    out = HumanBytes(bytes);
  }
  if (lines) out += fmt::format(", {} line{}", GroupThousands(*lines), *lines == 1 ? "" : "s");
  return out;
}

void ProgressLine::Update(uint64_t bytes, std::optional<uint64_t> total,
                          std::optional<uint64_t> lines) {
  bytes_ = bytes;
  total_ = total;
  lines_ = lines;
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (drawn_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  Draw();
}

void ProgressLine::UpdateCount(uint64_t done, uint64_t total, const char* unit) {
  unit_ = unit;
  Update(done, total, std::nullopt);
}

void ProgressLine::Finish() {
  if (!enabled_ || !drawn_) {
    enabled_ = false;
    return;
  }
  Draw();
  std::fputc('\n', out_);
  std::fflush(out_);
  enabled_ = false;
}

void ProgressLine::Draw() {
  // Carriage return and "erase to the end of the line": only ever written to a terminal.
  const std::string text = unit_ != nullptr ? FormatCountProgress(bytes_, total_.value_or(0), unit_)
                                            : FormatProgress(bytes_, total_, lines_);
  std::fprintf(out_, "\r\033[K%s", text.c_str());
  std::fflush(out_);
  drawn_ = true;
}

}  // namespace sendq::cli
