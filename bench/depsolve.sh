#!/usr/bin/env bash
# Benchmarks kiln's metadata loading and dependency solving against apt-get on the same
# machine, in the same run, with the same 150-package request (bench/request-150.txt).
#
#   bench/depsolve.sh            # prints a Markdown table for BENCHMARKS.md
#
# Figures: cold fetch+parse of bookworm main+updates+security; warm end-to-end
# `kiln depsolve` vs `apt-get -s` (empty dpkg status, no Recommends); warm universe load
# and solver time alone (p50 of 20 runs); peak RSS.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
KILN_BENCH=1 scripts/install-deps
cargo build --release --quiet -p kiln-cli
kiln="${CARGO_TARGET_DIR:-$root/target}/release/kiln"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pkgs=$(paste -sd, bench/request-150.txt)
runs=${RUNS:-10}

# apt, on the host's own lists (refreshed so both see the same archive state).
apt-get update -qq
: > "$work/empty-status"
apt_cmd="apt-get -s -o Dir::State::status=$work/empty-status -o APT::Install-Recommends=false install $(tr '\n' ' ' < bench/request-150.txt)"
napt=$($apt_cmd 2>/dev/null | grep -c '^Inst ')

# Cold: empty store, fetch + verify + decompress + index.
cold_ms=()
for i in 1 2 3; do
  rm -rf "$work/store"
  s=$(date +%s%N)
  "$kiln" --store "$work/store" --state "$work/state" depsolve --packages "$pkgs" > /dev/null
  cold_ms+=($(( ($(date +%s%N) - s) / 1000000 )))
done
nkiln=$("$kiln" --store "$work/store" --state "$work/state" depsolve --packages "$pkgs" | wc -l)

hyperfine --style none --warmup 1 --runs "$runs" --export-json "$work/hf.json" \
  -n kiln "$kiln --store $work/store --state $work/state depsolve --packages $pkgs" \
  -n kiln-offline "$kiln --store $work/store --state $work/state --offline depsolve --packages $pkgs" \
  -n apt "$apt_cmd" > /dev/null

# Internal timings: the CLI prints `timing load_ms=.. solve_ms=..` with --timings.
for i in $(seq 20); do
  "$kiln" --store "$work/store" --state "$work/state" --offline depsolve --timings --packages "$pkgs" 2>&1 >/dev/null | grep '^timing'
done > "$work/timings"
rss_kb=$( { /usr/bin/time -v "$kiln" --store "$work/store" --state "$work/state" depsolve --packages "$pkgs" > /dev/null; } 2>&1 | awk -F: '/Maximum resident/{gsub(/ /,"",$2); print $2}')
rss_apt_kb=$( { /usr/bin/time -v $apt_cmd > /dev/null; } 2>&1 | awk -F: '/Maximum resident/{gsub(/ /,"",$2); print $2}')

python3 - "$work" "$napt" "$nkiln" "$rss_kb" "$rss_apt_kb" "${cold_ms[@]}" <<'PY'
import json, statistics, sys
work, napt, nkiln, rss, rss_apt = sys.argv[1:6]
cold = sorted(int(x) for x in sys.argv[6:])
hf = {r["command"]: r for r in json.load(open(f"{work}/hf.json"))["results"]}
med = lambda n: statistics.median(hf[n]["times"]) * 1000
t = [dict(kv.split("=") for kv in l.split()[1:]) for l in open(f"{work}/timings")]
load = statistics.median(float(x["load_ms"]) for x in t)
solve = statistics.median(float(x["solve_ms"]) for x in t)
k, ko, a = med("kiln"), med("kiln-offline"), med("apt")
print(f"| request | 150 packages → kiln {nkiln} / apt {napt} installed |")
print("|---|---|")
print(f"| `kiln depsolve`, warm (checks InRelease) p50 | {k:.0f} ms |")
print(f"| `kiln depsolve --offline`, warm p50 | {ko:.0f} ms |")
print(f"| `apt-get -s` (same request, same run) p50 | {a:.0f} ms |")
print(f"| kiln / apt | {k/a:.3f} (target ≤ 0.1) |")
print(f"| warm universe load p50 | {load:.1f} ms (target ≤ 100) |")
print(f"| solver alone p50 | {solve:.1f} ms (target ≤ 50) |")
print(f"| cold fetch + verify + parse (median of 3) | {cold[1]} ms (target ≤ 5000) |")
print(f"| peak RSS kiln / apt | {int(rss)//1024} MiB / {int(rss_apt)//1024} MiB (target ≤ 300) |")
PY
