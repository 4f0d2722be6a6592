#!/usr/bin/env bash
# Load check of `kiln serve` on loopback: CLIENTS concurrent clients (default 50) for
# SECONDS (default 60), mixing blueprint pushes to 4 blueprints, depsolves (the real
# Debian universe, from the host's apt configuration) and status reads, one connection
# per request. Fails unless there are no errors and every successful push is a commit in
# <state>/blueprints.git. Prints a Markdown table for BENCHMARKS.md.
#
#   bench/serve_load.sh                  # release build, TCP 127.0.0.1
#   TRANSPORT=socket bench/serve_load.sh # the unix socket instead
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
clients=${CLIENTS:-50}
seconds=${SECONDS_LOAD:-60}
cargo build --release --quiet -p kiln-cli
cargo build --release --quiet -p kiln-service --example serve_load
target="${CARGO_TARGET_DIR:-$root/target}/release"
work=$(mktemp -d "${TMPDIR:-/tmp}/serve-load.XXXXXX")
server=
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
: > "$work/kiln.toml"   # empty: mirrors from the host's apt configuration

"$target/kiln" --config "$work/kiln.toml" --state "$work/state" --store "${LOAD_STORE:-$work/store}" \
  serve --socket "$work/api.socket" --listen 127.0.0.1:0 --no-examples 2> "$work/serve.log" &
server=$!
url=
for _ in $(seq 1 600); do
  url=$(sed -n 's|^kiln serve: listening on \(http://[0-9.:]*\).*|\1|p' "$work/serve.log")
  [ -n "$url" ] && break
  kill -0 "$server" 2>/dev/null || { cat "$work/serve.log"; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "kiln serve did not start"; cat "$work/serve.log"; exit 1; }

if [ "${TRANSPORT:-tcp}" = socket ]; then to=(--socket "$work/api.socket"); else to=(--url "$url"); fi
echo "date: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "transport: ${TRANSPORT:-tcp} (${to[*]})"
"$target/examples/serve_load" "${to[@]}" --state "$work/state" --clients "$clients" --seconds "$seconds"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg); server peak RSS: $(grep VmHWM /proc/$server/status | awk '{print $2/1024 " MiB"}')"
