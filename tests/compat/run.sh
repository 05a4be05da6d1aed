#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# make compat: libvfio-user's own Python test suite, unmodified, run against
# vfu's libvfio-user.so.0 by the suite's own runner.
#
#   tests/compat/run.sh [LIB.so]     (default: build/core/libvfio-user.so.0)
#
# The suite is found at $LIBVFIO_USER_TESTS (a folder holding
# run-libvfio-user-tests.sh), by default ../shared/compat beside the
# checkout; without it this prints one SKIP line and passes.
#
# Passes when every test passes except those listed in
# tests/compat/deviations.txt (vfu's differences on purpose, the README's
# "Differences from libvfio-user") or tests/compat/pending.txt (work not
# done yet), and fails as well when a listed test passes, so that the
# lists never claim more than is true.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
lib=${1:-$top/build/core/libvfio-user.so.0}
suite=${LIBVFIO_USER_TESTS:-$top/../shared/compat}
lists="$top/tests/compat/deviations.txt $top/tests/compat/pending.txt"

if [ ! -f "$suite/run-libvfio-user-tests.sh" ]; then
    echo "SKIP: libvfio-user's test suite not found at $suite (set LIBVFIO_USER_TESTS)"
    exit 0
fi
if ! /usr/bin/python3 -c 'import pytest' 2>/dev/null; then
    echo "SKIP: libvfio-user's test suite needs Debian's python3-pytest"
    exit 0
fi
[ -f "$lib" ] || { echo "compat: no library at $lib (build first)" >&2; exit 2; }

out=$(bash "$suite/run-libvfio-user-tests.sh" "$lib" 2>&1)
echo "$out" | grep -E '^(test_.*(passed|finish)|libvfio-user suite:)'

# Test ids that failed or errored, once each.
failed=$(echo "$out" | sed -nE 's/^(FAILED|ERROR) ([^ ]+).*/\2/p' | sort -u)
expected=$(cat $lists 2>/dev/null | grep -vE '^[[:space:]]*(#|$)' | awk '{print $1}' | sort -u)
total=$(echo "$out" | sed -nE 's/^libvfio-user suite: [0-9]+ passed, ([0-9]+) failed.*/\1/p')

rc=0
if echo "$out" | grep -q 'did not finish'; then
    echo "compat: a test file did not finish (a test hangs)"
    rc=1
fi
new=$(printf '%s\n' "$failed" | grep -vxF -e "$expected" | grep .)
if [ -n "$new" ]; then
    echo "compat: failing, and not a listed difference:"
    printf '  %s\n' $new
    rc=1
fi
fixed=$(printf '%s\n' "$expected" | grep -vxF -e "$failed" | grep .)
if [ -n "$fixed" ]; then
    echo "compat: passing now, remove from tests/compat/{deviations,pending}.txt:"
    printf '  %s\n' $fixed
    rc=1
fi
nlisted=$(printf '%s\n' "$failed" | grep -c .)
if [ -n "$total" ] && [ "$total" -gt "$nlisted" ]; then
    echo "compat: $total tests failed but only $nlisted were named"
    rc=1
fi
[ $rc = 0 ] && echo "compat: passed (listed differences: $(printf '%s\n' "$expected" | grep -c .))"
exit $rc
