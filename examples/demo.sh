#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# `make demo`: serve devices/gpio.lua with vfu-lua, show its config space with
# vfu-lspci, then drive it with vfu's own client (examples/gpio-demo.lua).
set -eu
build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d /tmp/vfu-demo.XXXXXX)
sock=$dir/gpio.sock
log=$dir/vfu-lua.log
trace=$dir/trace.jsonl

cleanup() {
    [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

echo "== starting: vfu-lua --trace trace.jsonl devices/gpio.lua $sock"
"$top/$build/vfu-lua" --trace "$trace" "$top/devices/gpio.lua" "$sock" -v >"$log" 2>&1 &
pid=$!
i=0
while [ ! -S "$sock" ]; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
        echo "vfu-lua did not start:"; cat "$log"; exit 1
    fi
    sleep 0.05
done

echo
echo "== vfu-lspci $sock   (the format 'lspci -F' reads)"
"$top/$build/core/vfu-lspci" "$sock"
if command -v lspci >/dev/null; then
    echo
    echo "== lspci -vv -F <(vfu-lspci $sock)"
    "$top/$build/core/vfu-lspci" "$sock" >"$dir/cfg"
    lspci -vv -F "$dir/cfg" 2>/dev/null
fi

echo
echo "== driving the device with vfu's client: vfu-lua --unsafe examples/gpio-demo.lua"
"$top/$build/vfu-lua" --unsafe "$top/examples/gpio-demo.lua" "$sock"

if [ -s "$trace" ]; then
    echo
    echo "== the server's --trace: $(grep -c '"event":"msg"' "$trace") protocol messages," \
         "$(grep -vc '"event":"msg"' "$trace") device events; the last write:"
    grep -B1 -A1 '"event":"region_write"' "$trace" | tail -3 | sed 's/^/  /'
fi

if [ -s "$log" ]; then
    echo
    echo "== what the server logged"
    sed 's/^/  /' "$log"
fi
