#include "util/process.h"

#include <fmt/format.h>
#include <pthread.h>

namespace sendq {

void NameThisThread(const char* name) { pthread_setname_np(pthread_self(), name); }

Status ParseHostPort(std::string_view text, std::string* host, int* port) {
  std::string_view h;
  std::string_view p;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return Status::InvalidArgument(fmt::format("expected [IPV6]:PORT, got '{}'", text));
    }
    h = text.substr(1, close - 1);
    p = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return Status::InvalidArgument(fmt::format("expected HOST:PORT, got '{}'", text));
    }
    h = text.substr(0, colon);
    p = text.substr(colon + 1);
    if (h.find(':') != std::string_view::npos) {
      return Status::InvalidArgument(
          fmt::format("an IPv6 address needs brackets, as in [::1]:8080; got '{}'", text));
    }
  }
  bool bad_host = h.empty() || h.find_first_of("[]") != std::string_view::npos;
  for (char c : h) bad_host |= static_cast<unsigned char>(c) <= 0x20 || c == 0x7f;
  if (bad_host)
    return Status::InvalidArgument(fmt::format("missing or malformed host in '{}'", text));
  int value = 0;
  bool bad_port = p.empty() || p.size() > 5;
  for (char c : p) {
    if (c < '0' || c > '9') bad_port = true;
    if (!bad_port) value = value * 10 + (c - '0');
  }
  if (bad_port || value > 65535) {
    return Status::InvalidArgument(
        fmt::format("the port must be a number from 0 to 65535, got '{}'", p));
  }
  *host = std::string(h);
  *port = value;
  return Status::Ok();
}

sigset_t BlockStopSignals() {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return stop_signals;
}

const char* AwaitStopSignal(const sigset_t& stop_signals) {
  int sig = 0;
  sigwait(&stop_signals, &sig);
  return sig == SIGTERM ? "SIGTERM" : "SIGINT";
}

}  // namespace sendq
