#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Install into a scratch prefix and build a libvfio-user program against it
# with pkg-config alone, as a user of the installed library would.
# Usage: install_check.sh BUILD_DIR SOURCE_DIR
set -eu
build=$1 src=$2
prefix=$(mktemp -d /tmp/vfu-install.XXXXXX)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
pc=$(find "$prefix" -name libvfio-user.pc)
test -n "$pc"
flags=$(PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --cflags --libs libvfio-user)
libdir=$(dirname "$(find "$prefix" -name 'libvfio-user.so.0' | head -1)")
${CC:-cc} -o "$prefix/gpio" "$src/examples/gpio-pci-idio-16.c" $flags -Wl,-rpath,"$libdir"
# it must run against the installed library and say how to use it
if "$prefix/gpio" 2>"$prefix/err"; then exit 1; fi
grep -q usage "$prefix/err"
ldd "$prefix/gpio" | grep -q "$libdir/libvfio-user.so.0"
echo "installed library, headers and libvfio-user.pc work"
