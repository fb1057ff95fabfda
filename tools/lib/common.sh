# Shared by tools/run, tools/test and the benchmarks: install what is missing, then build.
# Sourced, not run.

SENDQ_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# Debian 12 packages the build, the tests and tools/run need.
SENDQ_PACKAGES=(
  build-essential cmake ninja-build pkg-config git curl ca-certificates
  libsqlite3-dev sqlite3 libcpp-httplib-dev libssl-dev zlib1g-dev libbrotli-dev
  nlohmann-json3-dev libfmt-dev libcli11-dev doctest-dev libboost-dev
  libphonenumber-dev libhowardhinnant-date-dev tzdata
  python3-jsonschema
)

sendq_say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Installs only the packages that are not installed yet.
sendq_install_deps() {
  local missing=()
  local pkg
  for pkg in "${SENDQ_PACKAGES[@]}" "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$pkg")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  sendq_say "installing: ${missing[*]}"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# sendq_build DIR BUILD_TYPE [cmake args...]
sendq_build() {
  local dir="$1" type="$2"
  shift 2
  cmake -S "$SENDQ_ROOT" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="$type" "$@" >/dev/null
  cmake --build "$dir" --parallel "$(nproc)"
}
