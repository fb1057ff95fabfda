#!/usr/bin/env bash
# Checks the files in deploy/ with the tools that read them, where those tools are installed:
#   - deploy/sendq.service: systemd-analyze verify, on a copy whose ExecStart runs BINARY
#     (the unit names /usr/local/bin/sendq, which need not exist here);
#   - deploy/alerts.yml: promtool check rules, then promtool test rules deploy/alerts_test.yml.
# Exit status: 0 all checks passed, 1 one failed, 77 neither tool is installed (ctest: skipped).
#
# usage: tests/deploy/check_deploy.sh BINARY
set -uo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: $0 BINARY" >&2
  exit 1
fi
binary="$1"
case "$binary" in
  /*) ;;
  *) binary="$PWD/$binary" ;;
esac
deploy="$(cd "$(dirname "$0")/../../deploy" && pwd)" || exit 1

checked=0
failed=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failed=1; }

if command -v systemd-analyze >/dev/null 2>&1; then
  checked=1
  if [ ! -x "$binary" ]; then
    fail "systemd-analyze verify: $binary is not an executable file"
  else
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    # The copy keeps the unit's name: systemd-analyze takes the unit name from the file name.
    replacement="$(printf '%s' "$binary" | sed 's/[\\&#]/\\&/g')"
    sed "s#^ExecStart=/usr/local/bin/sendq #ExecStart=$replacement #" "$deploy/sendq.service" \
      >"$tmp/sendq.service"
    if ! grep -qxF "ExecStart=$binary serve" "$tmp/sendq.service"; then
      fail "deploy/sendq.service: no 'ExecStart=/usr/local/bin/sendq serve' line to rewrite"
    else
      # verify exits 0 even for unknown keys and bad values: any finding about the unit fails.
      output="$(systemd-analyze verify "$tmp/sendq.service" 2>&1)"
      status=$?
      [ -n "$output" ] && printf '%s\n' "$output"
      if [ "$status" -ne 0 ] || printf '%s\n' "$output" | grep -q 'sendq\.service'; then
        fail "systemd-analyze verify deploy/sendq.service (ExecStart=$binary)"
      else
        pass "systemd-analyze verify deploy/sendq.service (ExecStart=$binary)"
      fi
      score="$(systemd-analyze security --offline=true "$tmp/sendq.service" 2>/dev/null |
        sed -n 's/.*Overall exposure level for sendq.service: //p')"
      [ -n "$score" ] && echo "note: systemd-analyze security exposure: $score"
    fi
  fi
else
  echo "SKIP: systemd-analyze not installed; deploy/sendq.service not checked"
fi

if command -v promtool >/dev/null 2>&1; then
  checked=1
  if promtool check rules "$deploy/alerts.yml"; then
    pass "promtool check rules deploy/alerts.yml"
  else
    fail "promtool check rules deploy/alerts.yml"
  fi
  if promtool test rules "$deploy/alerts_test.yml"; then
    pass "promtool test rules deploy/alerts_test.yml"
  else
    fail "promtool test rules deploy/alerts_test.yml"
  fi
else
  echo "SKIP: promtool not installed (Debian: prometheus); deploy/alerts.yml not checked"
fi

if [ "$checked" -eq 0 ]; then
  echo "SKIP: neither systemd-analyze nor promtool is installed"
  exit 77
fi
exit "$failed"
