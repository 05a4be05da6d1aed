#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Beyond one boot with one device: gpio.lua and the C example in one guest
# at once; a second boot served by the same two servers, not restarted,
# the device state carried over; a guest whose RAM is not shared (every DMA
# map without an fd). Usage: test_gpio_guests.sh VFU-LUA GPIO-SERVER
set -u
. "$(dirname "$0")/lib.sh"
guest_require
vfu_lua=${1:?usage: test_gpio_guests.sh VFU-LUA GPIO-SERVER}
server=${2:?usage: test_gpio_guests.sh VFU-LUA GPIO-SERVER}
{ echo "GPIO_CARDS=2"; cat "$guest_top/tests/guest/gpio_guest.sh"; } > "$guest_work/two.sh"
guest_initramfs "$guest_work/two.gz" "$guest_work/two.sh"
guest_serve lua "$vfu_lua" "$guest_top/devices/gpio.lua"
guest_serve c "$server"
devs=(-device "$(guest_device lua 0x4)" -device "$(guest_device c 0x5)")
for boot in 1 2; do
    guest_boot "$guest_work/two.gz" "${devs[@]}"
    guest_verdict >/dev/null || { echo "boot $boot of two devices:"; guest_verdict; exit 1; }
    for p in $guest_pids; do
        kill -0 "$p" 2>/dev/null || { echo "FAIL: a server died after boot $boot"; guest_verdict; exit 1; }
    done
done
echo "two devices, two boots on the same servers: PASS"
# Guest RAM not shared: QEMU maps it without fds.
guest_boot "$guest_work/two.gz" "${devs[@]}" \
    -object memory-backend-ram,id=ram,size=512M -machine memory-backend=ram
guest_verdict
