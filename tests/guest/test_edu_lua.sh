#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# devices/edu.lua under QEMU's vfio-user-pci, driven from the guest by a
# static program (edu_guest.c) through sysfs: identification, liveness,
# factorial, interrupt raise/ack, and a DMA round trip between a guest page
# and the device's buffer, checked byte for byte (guest RAM shared: the
# device reaches it through the mapped memfd).
# Usage: test_edu_lua.sh VFU-LUA EDU-GUEST
set -u
. "$(dirname "$0")/lib.sh"
guest_require
vfu_lua=${1:?usage: test_edu_lua.sh VFU-LUA EDU-GUEST}
prog=${2:?usage: test_edu_lua.sh VFU-LUA EDU-GUEST}
echo 'edu_guest; sync; poweroff -f' > "$guest_work/edu.sh"
guest_initramfs "$guest_work/initrd.gz" "$guest_work/edu.sh" "$prog"
guest_serve edu "$vfu_lua" "$guest_top/devices/edu.lua"
guest_boot "$guest_work/initrd.gz" -device "$(guest_device edu 0x4)"
guest_verdict || exit 1
guest_boot "$guest_work/initrd.gz" -device "$(guest_device edu 0x4)" \
    -object memory-backend-ram,id=ram,size=512M -machine memory-backend=ram
guest_verdict
