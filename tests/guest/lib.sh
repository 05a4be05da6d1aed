# SPDX-License-Identifier: BSD-3-Clause
# Shared by the guest tests: find QEMU and the guest kernel, build an
# initramfs around a guest-side script, start vfu servers, boot, and read
# the guest's verdict from its serial console. Sourced, not run.
#
# Found through (each falls back to ../shared/qemu beside the checkout):
#   VFU_QEMU            qemu-system-x86_64 with vfio-user-pci (10.1 or later)
#   VFU_QEMU_FIRMWARE   the folder QEMU's -L needs (bios-256k.bin, ...)
#   VFU_GUEST_KERNEL    a bzImage; its modules must match VFU_GUEST_MODULES
#   VFU_GUEST_MODULES   a lib/modules folder holding that kernel's modules
# and busybox-static's /bin/busybox and cpio on the host.
#
# The guest-side script runs as part of /init with /proc, /sys and /dev
# mounted; it reports with `pass`/`fail MESSAGE`, and the boot's verdict is
# the first "VFU-GUEST:" line on the console.

guest_top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
guest_shared=$guest_top/../shared/qemu
VFU_QEMU=${VFU_QEMU:-$guest_shared/bin/qemu-system-x86_64}
VFU_QEMU_FIRMWARE=${VFU_QEMU_FIRMWARE:-$guest_shared/share/qemu}
VFU_GUEST_KERNEL=${VFU_GUEST_KERNEL:-$(ls "$guest_shared"/guest/vmlinuz-* 2>/dev/null | head -n1)}
VFU_GUEST_MODULES=${VFU_GUEST_MODULES:-$guest_shared/guest/lib/modules}
GUEST_TIMEOUT=${GUEST_TIMEOUT:-150}

# Print one SKIP line and end the test (passing) when something is missing.
guest_require() {
    local what=""
    [ -x "$VFU_QEMU" ] || what="QEMU ($VFU_QEMU; set VFU_QEMU)"
    [ -z "$what" ] && [ -d "$VFU_QEMU_FIRMWARE" ] ||
        what=${what:-"QEMU firmware ($VFU_QEMU_FIRMWARE; set VFU_QEMU_FIRMWARE)"}
    [ -z "$what" ] && [ -f "$VFU_GUEST_KERNEL" ] ||
        what=${what:-"a guest kernel (set VFU_GUEST_KERNEL)"}
    [ -z "$what" ] && [ -d "$VFU_GUEST_MODULES" ] ||
        what=${what:-"guest kernel modules ($VFU_GUEST_MODULES; set VFU_GUEST_MODULES)"}
    [ -z "$what" ] && [ -x /bin/busybox ] && command -v cpio >/dev/null ||
        what=${what:-"busybox-static and cpio (apt-get install busybox-static cpio)"}
    if [ -n "$what" ]; then
        echo "SKIP: $(basename "$0"): no $what"
        exit 0
    fi
}

# guest_initramfs OUT.cpio.gz SCRIPT [PROGRAM...]: /init runs SCRIPT, then
# powers off; the PROGRAMs (static binaries) go to /bin.
guest_initramfs() {
    local out=$1 script=$2 root
    shift 2
    root=$(mktemp -d "$guest_work/root.XXXX")
    mkdir -p "$root"/{bin,proc,sys,dev,tmp,mnt,lib}
    cp /bin/busybox "$root/bin/busybox"
    cp -r "$VFU_GUEST_MODULES" "$root/lib/modules"
    cp "$script" "$root/test.sh"
    [ $# -gt 0 ] && cp "$@" "$root/bin/"
    cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
pass() { echo "VFU-GUEST: PASS"; sync; poweroff -f; }
fail() { echo "VFU-GUEST: FAIL $*"; sync; poweroff -f; }
# note MESSAGE: progress, shown in the console log
note() { echo "vfu-guest: $*"; }
. /test.sh
fail "the test script ended without a verdict"
INIT
    chmod +x "$root/init"
    (cd "$root" && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$out"
    rm -rf "$root"
}

# guest_serve NAME COMMAND...: start a server in the background; its socket
# is $guest_work/NAME.sock, given to the command in place of an argument
# @SOCK@, or else as its last argument.
guest_serve() {
    local name=$1; shift
    local sock=$guest_work/$name.sock a args=() placed=""
    for a in "$@"; do
        [ "$a" = @SOCK@ ] && { a=$sock; placed=1; }
        args+=("$a")
    done
    [ -n "$placed" ] || args+=("$sock")
    "${args[@]}" > "$guest_work/$name.log" 2>&1 &
    eval "guest_pid_$name=$!"
    guest_pids="$guest_pids $!"
    for _ in $(seq 100); do
        [ -S "$sock" ] && return 0
        sleep 0.1
    done
    echo "FAIL: server $name did not create its socket; its log:"
    cat "$guest_work/$name.log"
    exit 1
}

# guest_boot INITRD [QEMU OPTIONS...]: boot once, serial console in
# $guest_work/console.log. Devices: -device "$(guest_device NAME ADDR)".
guest_boot() {
    local initrd=$1; shift
    timeout -k 5 "$GUEST_TIMEOUT" "$VFU_QEMU" -L "$VFU_QEMU_FIRMWARE" \
        -machine q35,memory-backend=mem -accel tcg -cpu max -smp 1 -m 512M \
        -object memory-backend-memfd,id=mem,size=512M,share=on \
        -nodefaults -display none -no-reboot -serial "file:$guest_work/console.log" \
        -kernel "$VFU_GUEST_KERNEL" -initrd "$initrd" \
        -append "console=ttyS0 panic=-1 loglevel=4" "$@" \
        > "$guest_work/qemu.log" 2>&1
}

# guest_device NAME ADDR: the -device option for server NAME at PCI slot ADDR.
guest_device() {
    printf '{"driver":"vfio-user-pci","id":"%s","addr":"%s","socket":{"path":"%s","type":"unix"}}' \
        "$1" "$2" "$guest_work/$1.sock"
}

# guest_verdict: exit 0 on PASS; print what went wrong otherwise.
guest_verdict() {
    local v
    v=$(grep -a -m1 'VFU-GUEST:' "$guest_work/console.log" 2>/dev/null | tr -d '\r')
    case "$v" in
    "VFU-GUEST: PASS") echo "PASS: $(basename "$0")"; return 0 ;;
    "VFU-GUEST: FAIL"*) echo "FAIL: $(basename "$0"): ${v#VFU-GUEST: FAIL }" ;;
    *) echo "FAIL: $(basename "$0"): the guest gave no verdict" ;;
    esac
    echo "--- guest console (last 40 lines)"; tail -n 40 "$guest_work/console.log" 2>/dev/null
    echo "--- qemu"; tail -n 20 "$guest_work/qemu.log" 2>/dev/null
    for f in "$guest_work"/*.log; do
        case $f in */console.log|*/qemu.log) continue ;; esac
        echo "--- $(basename "$f")"; tail -n 20 "$f"
    done
    return 1
}

guest_cleanup() {
    local p
    for p in $guest_pids; do kill "$p" 2>/dev/null; done
    for p in $guest_pids; do wait "$p" 2>/dev/null; done
    [ -n "${GUEST_KEEP:-}" ] && { echo "kept: $guest_work"; return; }
    rm -rf "$guest_work"
}

guest_pids=""
guest_work=$(mktemp -d /tmp/vfu-guest.XXXXXX)
trap guest_cleanup EXIT
