#!/bin/sh
# Downloads a few real Debian packages for the optional test
# `real_debs_match_dpkg_deb` in tests/archive.rs, which compares kiln's unpacking with
# `dpkg-deb -x`. The test passes offline without them (it skips).
#
#   crates/deb/tests/fetch-test-debs.sh [DIR]     (default: $KILN_TEST_DEBS or /var/tmp/kiln-test-debs)
#   KILN_TEST_DEBS=DIR cargo test -p kiln-deb --test archive real_debs
set -eu
dir=${1:-${KILN_TEST_DEBS:-/var/tmp/kiln-test-debs}}
mkdir -p "$dir"
cd "$dir"
# Small to medium packages with many entry kinds: hard links and symlinks (tzdata),
# merged-usr paths and setuid binaries (mount, passwd), a large shared library (libc6).
apt-get download base-files coreutils libc6 tzdata passwd mount dash >/dev/null
ls -1 "$dir"/*.deb
