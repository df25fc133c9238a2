#!/usr/bin/env bash
# Installs everything imgate needs to build and test, from Debian's packages and the npm
# registry. Idempotent and quiet when nothing is missing. Run as root (or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  # build
  meson ninja-build g++ pkg-config
  libevent-dev libssl-dev libyaml-cpp-dev libre2-dev libjemalloc-dev zlib1g-dev
  libexpected-dev rapidjson-dev libmaxminddb-dev
  # tests, fuzzers, benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev clang libclang-rt-14-dev
  python3 python3-websockets python3-pytest python3-pytest-xdist python3-cryptography python3-socketio python3-websocket python3-requests curl openssl procps
  chromium  # the browser path of the integration tests (driven by npm playwright-core)
  nginx libnginx-mod-nchan  # a peer in bench/compare (started there on loopback ports only)
  python3-matplotlib  # bench/sweep draws the charts of bench/RESULTS.md
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
# Node: the machine image may carry its own nodejs build (with npm inside); use Debian's
# packages only when there is none.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # nginx's package starts a service on port 80 where an init system lets it: bench/compare
  # runs its own nginx, so stop that one (by its pid file: nothing else is touched).
  if [[ " ${missing[*]} " == *" nginx "* ]] && [ -s /run/nginx.pid ]; then
    $SUDO kill "$(cat /run/nginx.pid)" 2>/dev/null || true
  fi
fi

# Node clients for the integration tests (npm registry), into test/integration/node_modules.
if [ "${IMGATE_SKIP_NPM:-0}" != "1" ]; then
  if [ ! -d test/integration/node_modules/ws ] || \
     [ test/integration/package.json -nt test/integration/node_modules/.installed ]; then
    echo "setup: npm install (test/integration)"
    (cd test/integration && npm install --no-audit --no-fund --loglevel=error >/dev/null &&
       touch node_modules/.installed)
  fi
  # The peers bench/compare measures imgate against (Node ws, socket.io 4.8).
  if [ ! -d bench/peers/node_modules/socket.io ] || \
     [ bench/peers/package.json -nt bench/peers/node_modules/.installed ]; then
    echo "setup: npm install (bench/peers)"
    (cd bench/peers && npm install --no-audit --no-fund --loglevel=error >/dev/null &&
       touch node_modules/.installed)
  fi
fi
