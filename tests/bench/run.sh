#!/bin/sh
# Runs every benchmark program of a build, one after the other, so that the
# figures come from one run on one machine. Usage: run.sh BUILD_DIR [--pin]
set -eu
build=${1:?usage: run.sh BUILD_DIR [--pin]}
shift
echo "# vfu benchmarks, $(date -u +%Y-%m-%d), $(uname -m), $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for b in "$build"/tests/bench/bench_*; do
    [ -x "$b" ] || continue
    echo
    "$b" "$@"
done
