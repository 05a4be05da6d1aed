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

cleanup() {
    [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

echo "== starting: vfu-lua devices/gpio.lua $sock"
"$top/$build/vfu-lua" "$top/devices/gpio.lua" "$sock" -v >"$log" 2>&1 &
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
echo "== driving the device with vfu's client: lua5.4 examples/gpio-demo.lua"
LUA_CPATH="$top/$build/lua/?.so;;" lua5.4 "$top/examples/gpio-demo.lua" "$sock"

if [ -s "$log" ]; then
    echo
    echo "== what the server logged"
    sed 's/^/  /' "$log"
fi
