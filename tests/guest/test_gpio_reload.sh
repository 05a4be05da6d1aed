#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The prototyping loop under a running guest: vfu-lua --watch serves a copy
# of devices/gpio.lua to QEMU; once the guest has seen inputs follow
# outputs, the script is edited (sed -i: a rename, as many editors save)
# so that inputs are the inverse of outputs. The guest, not rebooted and
# QEMU still connected, must see the new behaviour on its next accesses.
# Usage: test_gpio_reload.sh VFU-LUA
set -u
. "$(dirname "$0")/lib.sh"
guest_require
vfu_lua=${1:?usage: test_gpio_reload.sh VFU-LUA}
script=$guest_work/gpio.lua
trace=$guest_work/gpio.trace
cp "$guest_top/devices/gpio.lua" "$script"
guest_initramfs "$guest_work/initrd.gz" "$guest_top/tests/guest/gpio_reload_guest.sh"
guest_serve gpio "$vfu_lua" --watch --trace "$trace" "$script"
guest_boot "$guest_work/initrd.gz" -device "$(guest_device gpio 0x4)" &
boot=$!

for _ in $(seq 1200); do
    grep -aq 'ready for reload' "$guest_work/console.log" 2>/dev/null && break
    kill -0 $boot 2>/dev/null || break
    sleep 0.1
done
grep -aq 'ready for reload' "$guest_work/console.log" 2>/dev/null ||
    { wait $boot; echo "the guest never got ready for the reload"; guest_verdict; exit 1; }

# The edit: a helper for inverted inputs, and both input registers use it.
sed -i -e 's/^local function nothing() return 0 end$/&\nlocal function inverse(shift) return function() return ~(pins.out >> shift) \& 0xff end end/' \
    -e 's/{ "in0_7",      0x1, read = byte(0),/{ "in0_7",      0x1, read = inverse(0),/' \
    -e 's/{ "in8_15",     0x5, ro = 0xff, read = byte(8) }/{ "in8_15",     0x5, ro = 0xff, read = inverse(8) }/' \
    "$script"
[ "$(grep -c 'inverse(' "$script")" = 3 ] || { echo "FAIL: the edit did not apply"; exit 1; }

wait $boot
grep -a 'reload' "$guest_work/gpio.log"
guest_verdict || exit 1
grep -q '"event":"reload".*"ok":true' "$trace" ||
    { echo "FAIL: no reload in the trace"; exit 1; }
# one connection: QEMU negotiated once and never reconnected
n=$(grep -c '"dir":"request","msg_id":[0-9]*,"cmd":"VERSION"' "$trace")
[ "$n" = 1 ] || { echo "FAIL: $n VERSION requests, QEMU reconnected"; exit 1; }
echo "PASS: the guest saw the edited device without a reboot"
