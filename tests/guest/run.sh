#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Boot a Linux guest with a vfu device and drop into its shell:
#
#   tests/guest/run.sh [VFU-LUA] SCRIPT.lua [SCRIPT ARGS...]
#   make guest SCRIPT=devices/x.lua
#
# The device is served by vfu-lua --watch (its log: the file named at
# start): saving SCRIPT reloads it under the running guest. It sits at PCI
# 00:04.0; the guest has busybox and the kernel's modules
# (modprobe works). Leave with `poweroff -f` or Ctrl-A X. QEMU, firmware and
# kernel are found as for the guest tests (tests/guest/lib.sh).
set -u
. "$(dirname "$0")/lib.sh"
guest_require
vfu_lua=$guest_top/build/vfu-lua
case "${1:-}" in *vfu-lua) vfu_lua=$1; shift ;; esac
script=${1:?usage: run.sh [VFU-LUA] SCRIPT.lua [ARGS...]}; shift
[ -x "$vfu_lua" ] || { echo "no vfu-lua at $vfu_lua: run make first" >&2; exit 1; }
cat > "$guest_work/shell.sh" <<'SH'
echo
echo "vfu guest: the device is at /sys/bus/pci/devices/0000:00:04.0"
echo "           (lspci-like: cat .../vendor .../device; modprobe DRIVER)"
echo "           leave with: poweroff -f"
setsid cttyhack sh
poweroff -f
SH
guest_initramfs "$guest_work/initrd.gz" "$guest_work/shell.sh"
guest_serve dev "$vfu_lua" --watch "$script" @SOCK@ "$@"
echo "device log: $guest_work/dev.log (kept while the guest runs)"
echo "edit $script and save: the device reloads under the guest (see the log)"
"$VFU_QEMU" -L "$VFU_QEMU_FIRMWARE" \
    -machine q35,memory-backend=mem -accel tcg -cpu max -smp 1 -m 512M \
    -object memory-backend-memfd,id=mem,size=512M,share=on \
    -nodefaults -display none -no-reboot -serial mon:stdio \
    -kernel "$VFU_GUEST_KERNEL" -initrd "$guest_work/initrd.gz" \
    -append "console=ttyS0 panic=-1 loglevel=4 quiet" \
    -device "$(guest_device dev 0x4)"
