// Small pieces every sendq program needs at start-up: the listen address, and stop signals.
#pragma once

#include <signal.h>

#include <string>
#include <string_view>

#include "util/status.h"

namespace sendq {

// "HOST:PORT" or "[IPV6]:PORT"; port 0 means any free port. The host comes back without
// brackets. Errors say what was expected.
// Names the calling thread (at most 15 characters), as `top -H` and /proc/PID/task/TID/comm
// show it.
void NameThisThread(const char* name);

Status ParseHostPort(std::string_view text, std::string* host, int* port);

// Blocks SIGINT and SIGTERM in the calling thread, and so in every thread it starts later, and
// ignores SIGPIPE (a peer that hung up is an I/O error, not a reason to die). Call it before
// starting threads; then one thread receives the stop signal with AwaitStopSignal.
sigset_t BlockStopSignals();

// Waits for SIGINT or SIGTERM (blocked by BlockStopSignals) and returns its name.
const char* AwaitStopSignal(const sigset_t& stop_signals);

}  // namespace sendq
