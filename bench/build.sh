#!/usr/bin/env bash
# Benchmarks `kiln build --type qcow2` against the peer ../shared/bench/peer-mmdebstrap.sh
# (mmdebstrap + sfdisk + mkfs.ext4 -d + mtools + systemd-boot + qemu-img) on the same
# package set, in the same run, cold and warm. Prints a Markdown table for BENCHMARKS.md.
#
#   sudo bench/build.sh          # needs root (the peer does; kiln's sandbox too)
#
# Environment:
#   PEER       path of the peer script (default: ../shared/bench/peer-mmdebstrap.sh)
#   SUITE      Debian suite (default: bookworm; kiln distro debian-12)
#   KEEP=1     keep the work directory (printed on stderr)
#   DROP_CACHES=0  do not drop the page cache before each timed run
#
# Before each timed run (the peer's and kiln's alike) the script flushes and drops the page
# cache, so that every run starts from the same memory state. On these VMs a large page
# cache makes new page-cache pages up to ten times slower to get (a 700 MB `cp`: 2.0 s
# with 9 GiB cached, 0.2 s after dropping it), which otherwise made the order of the runs
# matter more than either tool.
#
# Mirrors: neither tool is given a mirror here. kiln uses the host's apt sources (or
# KILN_CONFIG if set); the peer runs mmdebstrap without a MIRROR argument, i.e. with
# mmdebstrap's built-in default for the suite (it does not read the host's apt sources).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
peer=${PEER:-$root/../shared/bench/peer-mmdebstrap.sh}
suite=${SUITE:-bookworm}
case "$suite" in bookworm) distro=debian-12 ;; trixie) distro=debian-13 ;; *) echo "unknown suite $suite" >&2; exit 2 ;; esac
[ -r "$peer" ] || { echo "peer script not found: $peer" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "run as root (the peer needs it)" >&2; exit 1; }

KILN_BENCH=1 scripts/install-deps
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-lead}
cargo build --release --quiet -p kiln-cli
kiln="$CARGO_TARGET_DIR/release/kiln"

work=$(mktemp -d /var/tmp/kiln-bench-build.XXXXXX)
if [ "${KEEP:-}" = 1 ]; then echo "work dir: $work" >&2; else trap 'rm -rf "$work"' EXIT; fi

# The peer's package set: mmdebstrap --variant=minbase (Essential:yes + Priority:required
# + apt) plus its `base=` list. kiln always adds Essential + Priority:required, so the
# blueprint lists apt and the peer's extra packages, read from the peer script itself.
base=$(sed -n 's/^base=\([a-z0-9.+,-]*\)$/\1/p' "$peer")
[ -n "$base" ] || { echo "cannot read the package list from $peer" >&2; exit 1; }
bp=$work/bench.toml
{
  printf 'name = "bench-build"\ndescription = "peer-mmdebstrap package set"\nversion = "0.0.1"\ndistro = "%s"\n' "$distro"
  for p in apt ${base//,/ }; do printf '\n[[packages]]\nname = "%s"\n' "$p"; done
  printf '\n[customizations]\nhostname = "peer"\n'
} > "$bp"

now() { date +%s.%N; }
settle() { sync; [ "${DROP_CACHES:-1}" = 0 ] || echo 3 > /proc/sys/vm/drop_caches; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$2"; }

# Peer, cold: empty .deb cache (its --cache DIR is filled during this run).
echo "peer cold ..." >&2
settle
peer_cold=$(bash "$peer" --suite "$suite" --cache "$work/peer-cache" "$work/peer-cold" </dev/null | tail -n1)
echo "peer cold: $peer_cold" >&2
# Peer, warm: the same .debs reused from --cache (mmdebstrap has no cache of its own
# beyond apt's archives directory; metadata is downloaded again every run).
echo "peer warm ..." >&2
settle
peer_warm=$(bash "$peer" --suite "$suite" --cache "$work/peer-cache" "$work/peer-warm" </dev/null | tail -n1)
echo "peer warm: $peer_warm" >&2

# Size of the peer's root tree: the script deletes its tree, so extract it back from the
# qcow2's ext4 partition with debugfs (not timed).
peer_tree_bytes="" peer_initrd_bytes=""
if qemu-img convert -O raw "$work/peer-warm/peer.qcow2" "$work/peer.raw" 2>/dev/null; then
  read -r rstart rsize < <(sfdisk -J "$work/peer.raw" | python3 -c '
import json, sys
p = json.load(sys.stdin)["partitiontable"]["partitions"][1]; print(p["start"], p["size"])')
  dd if="$work/peer.raw" of="$work/peer-root.img" bs=1M iflag=skip_bytes,count_bytes \
     skip=$((rstart * 512)) count=$((rsize * 512)) conv=sparse status=none
  rm -f "$work/peer.raw"
  mkdir -p "$work/peer-tree"
  if debugfs -R "rdump / $work/peer-tree" "$work/peer-root.img" >/dev/null 2>&1; then
    rm -rf "$work/peer-tree/lost+found"
    peer_tree_bytes=$(du -sb --apparent-size "$work/peer-tree" | cut -f1)
    peer_initrd_bytes=$(stat -c %s "$work"/peer-tree/boot/initrd.img-* 2>/dev/null | head -n1)
  fi
  rm -rf "$work/peer-root.img" "$work/peer-tree"
fi

# kiln: cold (empty store: metadata, downloads, every stage), warm identical rebuild,
# warm with only the hostname changed.
run_kiln() { # name
  local s e
  settle
  s=$(now)
  "$kiln" build "$bp" --type qcow2 --distro "$distro" --store "$work/store" --state "$work/state" \
    --output "$work/kiln-$1" --progress none >"$work/kiln-$1.log" 2>&1 \
    || { cat "$work/kiln-$1.log" >&2; exit 1; }
  e=$(now)
  echo "$(secs "$s" "$e") $(stat -c %s "$work/kiln-$1/disk.qcow2")"
}
echo "kiln cold ..." >&2
kiln_cold=$(run_kiln cold)
echo "kiln warm ..." >&2
kiln_warm=$(run_kiln warm)
sed -i 's/^hostname = "peer"$/hostname = "peer2"/' "$bp"
echo "kiln warm, hostname changed ..." >&2
kiln_host=$(run_kiln host)
# Packages in kiln's OS tree: the sources of the os pipeline's deb.install.
kiln_pkgs=$("$kiln" manifest "$bp" --type qcow2 --distro "$distro" --store "$work/store" --state "$work/state" 2>/dev/null \
  | python3 -c 'import json,sys; m=json.load(sys.stdin); p=[p for p in m["pipelines"] if p["name"].startswith("os")][0]; print(len(p["stages"][0]["inputs"]["packages"]["refs"]))')

python3 - "$peer_cold" "$peer_warm" "$peer_tree_bytes:$peer_initrd_bytes" "$kiln_cold" "$kiln_warm" "$kiln_host" "$kiln_pkgs" <<'PY'
import json, sys
pc, pw = json.loads(sys.argv[1]), json.loads(sys.argv[2])
tree, initrd = sys.argv[3].split(":")
kc, kw, kh = ([float(x) for x in a.split()] for a in sys.argv[4:7])
npk = sys.argv[7]
mib = lambda b: f"{float(b) / 2**20:.0f} MiB"
def row(name, k, p):
    pb = p["bootstrap_s"]
    print(f"| {name} | {k:.1f} s | {p['total_s']:.1f} s ({pb:.1f} s mmdebstrap) | "
          f"{k / p['total_s']:.2f} | {k / pb:.2f} |")
print(f"| packages installed | kiln {npk} / peer {pc['packages']} | | | |")
print("|---|---|---|---|---|")
print("| run | kiln (`--type qcow2`) | peer total (mmdebstrap part) | kiln / peer total | kiln / peer mmdebstrap |")
row("cold (empty store / empty .deb cache)", kc[0], pc)
row("warm, identical rebuild", kw[0], pw)
row("warm, hostname changed", kh[0], pw)
print(f"| output size | `disk.qcow2` {mib(kc[1])} | `peer.qcow2` {mib(pc['image_bytes'])}; root tree "
      f"{mib(tree) if tree else 'n/a'}" + (f" (of which initrd {mib(initrd)})" if initrd else "") + " | | |")
print(f"| peer phases cold / warm (bootstrap, assemble, convert) | | "
      f"{pc['bootstrap_s']}/{pc['assemble_s']}/{pc['convert_s']} s; {pw['bootstrap_s']}/{pw['assemble_s']}/{pw['convert_s']} s | | |")
PY
