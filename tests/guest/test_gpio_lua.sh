#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# devices/gpio.lua under QEMU's vfio-user-pci, driven by Linux's own
# gpio-pci-idio-16 driver: outputs, inputs that follow them, the interrupt.
# Usage: test_gpio_lua.sh VFU-LUA
set -u
. "$(dirname "$0")/lib.sh"
guest_require
vfu_lua=${1:?usage: test_gpio_lua.sh VFU-LUA}
guest_initramfs "$guest_work/initrd.gz" "$guest_top/tests/guest/gpio_guest.sh"
guest_serve gpio "$vfu_lua" "${GPIO_SCRIPT:-$guest_top/devices/gpio.lua}"
guest_boot "$guest_work/initrd.gz" -device "$(guest_device gpio 0x4)"
guest_verdict
