#!/usr/bin/env bash
# Build the emulated Cortex-A lab (idempotent; every step is skipped once its stamp exists):
#   1. an arm64 Debian bookworm root filesystem (debootstrap --foreign + qemu-user-static) with python3;
#   2. the aarch64 wheels of ai-edge-litert and numpy installed into it (pip on the host, --platform);
#   3. the instruction-counting qemu TCG plugin, built against qemu-plugin.h from the Debian source
#      package of the qemu that is installed (apt-get source, a throwaway deb-src list).
# Usage: setup.sh LAB_DIR PYTHON   (PYTHON: a host python with pip, used only to download wheels)
# Needs root (debootstrap, chroot, binfmt_misc) and: apt-get install -y qemu-user qemu-user-static
#   debootstrap binfmt-support gcc libglib2.0-dev pkg-config xz-utils
set -euo pipefail

LAB=${1:?usage: setup.sh LAB_DIR PYTHON}
PY=${2:?usage: setup.sh LAB_DIR PYTHON}
HERE=$(cd "$(dirname "$0")" && pwd)
MIRROR=${EGEUNET_ARMLAB_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
# Pinned: the same LiteRT as constraints.txt; numpy 1.26.4 has a cp311 manylinux aarch64 wheel
# (bookworm's python3 is 3.11).
PIP_PINS=(ai-edge-litert==2.1.0 numpy==1.26.4)
ROOTFS=$LAB/rootfs
SITE=/opt/egeunet-site  # guest path of the wheels (egeunet/benchmarks/emulate.py: SITE)
mkdir -p "$LAB"

say() { echo "[armlab] $*"; }
die() { echo "[armlab] error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "setup needs root (debootstrap and chroot); run it as root"
missing=()
for t in debootstrap qemu-aarch64-static qemu-aarch64 gcc pkg-config chroot xz; do
    command -v "$t" >/dev/null || missing+=("$t")
done
pkg-config --exists glib-2.0 2>/dev/null || missing+=("glib-2.0 headers")
[ ${#missing[@]} = 0 ] || die "missing ${missing[*]}: apt-get install -y qemu-user qemu-user-static debootstrap binfmt-support gcc libglib2.0-dev pkg-config xz-utils"

cleanup_mounts() {
    for m in dev/pts dev proc sys; do
        mountpoint -q "$ROOTFS/$m" 2>/dev/null && umount -l "$ROOTFS/$m" || true
    done
}
trap cleanup_mounts EXIT

# ---- 1. root filesystem -------------------------------------------------------------
if [ ! -e "$LAB/.stamp-rootfs" ]; then
    cleanup_mounts
    # A half-built rootfs from an interrupted run: start over (never while anything is mounted in it).
    [ -d "$ROOTFS" ] && rm -rf --one-file-system "$ROOTFS"
    # chroot into an arm64 tree needs the kernel to hand aarch64 ELF files to qemu.
    mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    update-binfmts --enable qemu-aarch64 2>/dev/null || true
    [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || die "binfmt_misc has no qemu-aarch64 entry: apt-get install -y binfmt-support qemu-user-static"
    say "debootstrap (first stage) $SUITE arm64 from $MIRROR"
    debootstrap --arch=arm64 --foreign --variant=minbase --include=python3 "$SUITE" "$ROOTFS" "$MIRROR" >"$LAB/debootstrap.log" 2>&1 \
        || die "debootstrap failed; see $LAB/debootstrap.log"
    cp /usr/bin/qemu-aarch64-static "$ROOTFS/usr/bin/"
    say "debootstrap (second stage, emulated; about a minute)"
    chroot "$ROOTFS" /debootstrap/debootstrap --second-stage >>"$LAB/debootstrap.log" 2>&1 \
        || die "debootstrap --second-stage failed; see $LAB/debootstrap.log"
    touch "$LAB/.stamp-rootfs"
fi

# ---- 2. LiteRT + numpy aarch64 wheels -------------------------------------------------
if [ ! -e "$LAB/.stamp-wheels" ]; then
    pyver=$(chroot "$ROOTFS" /usr/bin/python3 -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')
    # Every manylinux tag the rootfs's glibc accepts (ai-edge-litert 2.1.0 is manylinux_2_27).
    glibc_minor=$(chroot "$ROOTFS" /usr/bin/python3 -c 'import platform; print(platform.libc_ver()[1].split(".")[1])')
    plats=(--platform manylinux2014_aarch64)
    for v in $(seq 17 "$glibc_minor"); do plats+=(--platform "manylinux_2_${v}_aarch64"); done
    say "pip install --target rootfs$SITE (cp$pyver, glibc 2.$glibc_minor, aarch64) ${PIP_PINS[*]}"
    rm -rf "$ROOTFS$SITE"
    # The host pip downloads and unpacks the wheels (no emulated pip, no certificates in the rootfs).
    env -u PIP_CONSTRAINT -u PIP_FIND_LINKS "$PY" -m pip install -q --disable-pip-version-check --no-compile \
        --target "$ROOTFS$SITE" "${plats[@]}" \
        --python-version "$pyver" --implementation cp --only-binary=:all: "${PIP_PINS[@]}" >"$LAB/pip.log" 2>&1 \
        || die "pip could not fetch the aarch64 wheels of ${PIP_PINS[*]}; see $LAB/pip.log"
    # Byte-compile once with the guest python: runs then never compile (or write) anything, so the
    # instruction counts of two runs differ only by what the runs do.
    say "byte-compiling the wheels with the guest python (emulated)"
    chroot "$ROOTFS" /usr/bin/python3 -m compileall -q "$SITE" >/dev/null || die "compileall failed in the rootfs"
    touch "$LAB/.stamp-wheels"
fi

# ---- 3. the instruction-counting plugin ------------------------------------------------
QEMU_VERSION=$(dpkg-query -W -f='${Version}' qemu-user 2>/dev/null || true)
[ -n "$QEMU_VERSION" ] || die "the qemu-user package is not installed (its dynamic qemu-aarch64 loads plugins): apt-get install -y qemu-user"
TAG=${QEMU_VERSION//[^A-Za-z0-9.+_-]/_}  # e.g. 1_7.2+dfsg-7+deb12u18+b3
HEADER="$LAB/include/$TAG/qemu-plugin.h"
if [ ! -s "$HEADER" ]; then
    say "fetching qemu-plugin.h from the Debian source of qemu $QEMU_VERSION"
    tmp=$(mktemp -d)
    printf 'deb-src %s %s main\ndeb-src %s %s-updates main\ndeb-src http://deb.debian.org/debian-security %s-security main\n' \
        "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" "$SUITE" >"$tmp/sources.list"
    mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial"
    aptopts=(-o Dir::Etc::SourceList="$tmp/sources.list" -o Dir::Etc::SourceParts=/nonexistent
             -o Dir::State::Lists="$tmp/lists" -o Dir::Cache="$tmp/cache" -o APT::Sandbox::User=root)
    apt-get "${aptopts[@]}" update >"$LAB/apt-source.log" 2>&1 || die "apt-get update (deb-src) failed; see $LAB/apt-source.log"
    (cd "$tmp" && { apt-get "${aptopts[@]}" source --download-only "qemu=$QEMU_VERSION" \
                    || apt-get "${aptopts[@]}" source --download-only qemu; }) >>"$LAB/apt-source.log" 2>&1 \
        || die "apt-get source qemu failed; see $LAB/apt-source.log"
    orig=$(ls "$tmp"/qemu_*.orig.tar.* | head -1)
    mkdir -p "$(dirname "$HEADER")"
    tar -xf "$orig" -C "$tmp" --wildcards '*/include/qemu/qemu-plugin.h'
    cp "$(find "$tmp" -path '*/include/qemu/qemu-plugin.h' | head -1)" "$HEADER.tmp" && mv "$HEADER.tmp" "$HEADER"
    rm -rf "$tmp"
fi
PLUGIN="$LAB/libinsncount-$TAG.so"
if [ ! -s "$PLUGIN" ] || [ "$HERE/insn_count.c" -nt "$PLUGIN" ]; then
    say "building $PLUGIN"
    # shellcheck disable=SC2046
    gcc -O2 -shared -fPIC -Wall -I"$(dirname "$HEADER")" -o "$PLUGIN.tmp" "$HERE/insn_count.c" \
        $(pkg-config --cflags --libs glib-2.0)
    mv "$PLUGIN.tmp" "$PLUGIN"
fi
ln -sfn "$(basename "$PLUGIN")" "$LAB/libinsncount.so"
echo "$QEMU_VERSION" >"$LAB/qemu-version"
say "ready: $LAB"
