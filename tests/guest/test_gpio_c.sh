#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The C example examples/gpio-pci-idio-16 (the library's public API) under
# QEMU's vfio-user-pci with Linux's gpio-pci-idio-16 driver: the same checks
# as test_gpio_lua.sh.
# Usage: test_gpio_c.sh GPIO-SERVER
set -u
. "$(dirname "$0")/lib.sh"
guest_require
server=${1:?usage: test_gpio_c.sh GPIO-SERVER}
guest_initramfs "$guest_work/initrd.gz" "$guest_top/tests/guest/gpio_guest.sh"
guest_serve gpio "$server"
guest_boot "$guest_work/initrd.gz" -device "$(guest_device gpio 0x4)"
guest_verdict
