#!/bin/bash
# setup-host.sh - prepare this Debian 12 (bookworm) x86_64 host to boot a real
# Debian kernel with 802.3ad bonding and a patched netdevsim (SR-IOV VFs) in
# QEMU/TCG through virtme-ng, for the kernel end-to-end tests (tests/kernel).
#
# Why: the hosts this project runs on (CI included) have no bonding driver and
# no module support; Debian does not build netdevsim, and upstream netdevsim
# has no get_link_ksettings, without which bonding keeps an 802.3ad slave out
# of LACP.  So: the bookworm-backports 6.12 kernel is downloaded and unpacked
# (dpkg -x, nothing installed), netdevsim is built out of tree from Debian's
# linux-source with netdevsim-link-ksettings.patch, virtme-ng comes from PyPI
# in its own venv.
#
# Idempotent; everything lands under $PFRELAY_KERNEL_CACHE
# (default /var/cache/pf-status-relay-kernel).  A second run only checks a
# stamp and takes about a second.  Writes $PFRELAY_KERNEL_CACHE/env.sh.
#
# Env: PFRELAY_KERNEL_CACHE  cache directory
#      PFRELAY_KERNEL_ABI    Debian kernel ABI (default 6.12.95+deb12; "auto" =
#                            the newest in the suite; used anyway if the pinned
#                            one is gone from the mirror)
#      PFRELAY_KERNEL_SUITE  default bookworm-backports
#      PFRELAY_VNG_VERSION   virtme-ng version (default 1.42)
#      MIRROR                Debian mirror (default: the one in /etc/apt)
set -euo pipefail

CACHE=${PFRELAY_KERNEL_CACHE:-/var/cache/pf-status-relay-kernel}
KABI=${PFRELAY_KERNEL_ABI:-6.12.95+deb12}
KSUITE=${PFRELAY_KERNEL_SUITE:-bookworm-backports}
VNG_VERSION=${PFRELAY_VNG_VERSION:-1.42}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PATCH=$HERE/netdevsim-link-ksettings.patch

log() { printf '[kernel-setup %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf '[kernel-setup] FAILED: %s\n' "$*" >&2; exit 1; }
step=starting
on_exit() {
    local rc=$?
    if [ "$rc" != 0 ]; then printf '[kernel-setup] FAILED during: %s (exit %s)\n' "$step" "$rc" >&2; fi
}
trap on_exit EXIT

[ "$(id -u)" = 0 ] || die "must run as root (apt-get, /var/cache)"
[ "$(uname -m)" = x86_64 ] || die "only x86_64 hosts are supported"
[ -r "$PATCH" ] || die "missing $PATCH"

mkdir -p "$CACHE" || die "cannot create $CACHE"
# One setup at a time (CI and developers may share the machine).
exec {lockfd}>"$CACHE/.setup.lock"
flock -w 900 "$lockfd" || die "another setup-host.sh holds $CACHE/.setup.lock"

# 1. bookworm packages: qemu (TCG), busybox-static (virtme-ng's initramfs),
#    the toolchain for the out-of-tree netdevsim, python3-venv for virtme-ng,
#    iproute2/ethtool used in the guest (the guest's root is the host's /).
step="apt-get install (bookworm packages)"
need_pkgs=(qemu-system-x86 busybox-static kmod file zstd xz-utils gcc-12 make patch
           libc6-dev binutils python3-venv iproute2 ethtool util-linux procps
           debian-archive-keyring)
missing=()
for p in "${need_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    apt-get update -qq || die "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        || die "apt-get install ${missing[*]}"
fi

# Fast path: everything below is keyed by this stamp.
patch_sum=$(sha256sum "$PATCH" | cut -d' ' -f1)
key="abi=$KABI suite=$KSUITE vng=$VNG_VERSION patch=$patch_sum layout=1"
if [ -s "$CACHE/ready" ] && [ "$(head -1 "$CACHE/ready")" = "$key" ] && [ -s "$CACHE/env.sh" ]; then
    # shellcheck source=/dev/null
    . "$CACHE/env.sh"
    if [ -s "$KIMG" ] && [ -s "$NSIM_KO" ] && [ -x "$VNG" ]; then
        step=finished
        log "cache ok ($CACHE, kernel $KREL)"
        exit 0
    fi
fi

# 2. a private apt configuration for the backports suite (/etc/apt untouched).
step="private apt configuration for $KSUITE"
if [ -z "${MIRROR:-}" ]; then
    MIRROR=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)\/\{0,1\}$/\1/p' \
        /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 || true)
    [ -n "$MIRROR" ] || MIRROR=$(awk '$1=="deb" && $0 ~ / main/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    [ -n "$MIRROR" ] || die "cannot find the Debian mirror in /etc/apt; set MIRROR"
fi
APTD=$CACHE/apt
mkdir -p "$APTD/etc" "$APTD/lists/partial" "$APTD/cache/archives/partial" "$CACHE/debs"
printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' \
    "$MIRROR" "$KSUITE" > "$APTD/etc/sources.list"
APTOPT=(-o Dir::Etc::sourcelist="$APTD/etc/sources.list" -o Dir::Etc::sourceparts=-
        -o Dir::State::Lists="$APTD/lists" -o Dir::Cache="$APTD/cache"
        -o APT::Sandbox::User=root)
step="apt-get update ($KSUITE, private lists under $APTD)"
if [ ! -e "$APTD/.updated" ] || [ -n "$(find "$APTD/.updated" -mmin +1440)" ]; then
    log "apt-get update ($KSUITE, private lists)"
    apt-get "${APTOPT[@]}" update -qq || die "$step"
    touch "$APTD/.updated"
fi

# 3. kernel image, headers, kbuild and the source package (downloaded only).
step="choosing the kernel"
if [ "$KABI" = auto ] || ! apt-cache "${APTOPT[@]}" show "linux-image-$KABI-amd64" >/dev/null 2>&1; then
    newest=$(apt-cache "${APTOPT[@]}" depends linux-image-amd64 2>/dev/null \
        | sed -n 's/.*Depends: linux-image-\(.*\)-amd64$/\1/p' | head -1)
    [ -n "$newest" ] || die "no linux-image-amd64 in $KSUITE ($MIRROR)"
    log "kernel ABI $KABI not available in $KSUITE, using $newest"
    KABI=$newest
fi
KREL=$KABI-amd64
pkgs=("linux-image-$KREL" "linux-headers-$KREL" "linux-headers-$KABI-common" "linux-kbuild-$KABI")
srcver=$(apt-cache "${APTOPT[@]}" show "linux-headers-$KREL" | sed -n 's/^Version: //p' | head -1)
[ -n "$srcver" ] || die "no version for linux-headers-$KREL"
srcmajor=$(echo "$KABI" | cut -d. -f1-2)
log "kernel $KREL (source $srcver)"
step="downloading the kernel packages"
cd "$CACHE/debs"
for p in "${pkgs[@]}"; do
    compgen -G "${p}_*.deb" >/dev/null || apt-get "${APTOPT[@]}" download -qq "$p" || die "download $p"
done
srcdeb_glob="linux-source-${srcmajor}_${srcver//:/%3a}_all.deb"
compgen -G "$srcdeb_glob" >/dev/null \
    || apt-get "${APTOPT[@]}" download -qq "linux-source-$srcmajor=$srcver" \
    || die "download linux-source-$srcmajor=$srcver"

# 4. unpack into $CACHE/k/<KREL>; point the headers Makefile at this tree.
step="unpacking the kernel packages"
R=$CACHE/k/$KREL
if [ ! -e "$R/.unpacked" ]; then
    log "unpacking into $R"
    rm -rf "$R"; mkdir -p "$R"
    for p in "${pkgs[@]}"; do
        deb=$(compgen -G "${p}_*.deb" | head -1)
        dpkg -x "$deb" "$R" || die "dpkg -x $deb"
    done
    touch "$R/.unpacked"
fi
H=$R/usr/src/linux-headers-$KREL
[ -f "$H/Makefile" ] || die "no headers in $H"
sed -i "s#^include /usr/src/#include $R/usr/src/#" "$H/Makefile"
MODDIR=
for d in "$R/lib/modules/$KREL" "$R/usr/lib/modules/$KREL"; do
    if [ -d "$d" ]; then MODDIR=$d; break; fi
done
[ -n "$MODDIR" ] || die "no modules directory in $R"
KIMG=$R/boot/vmlinuz-$KREL
[ -s "$KIMG" ] || die "no kernel image $KIMG"

# 5. netdevsim, out of tree, patched (bonding needs speed/duplex).
step="extracting drivers/net/netdevsim from linux-source"
SRC=$CACHE/src/$srcver
if [ ! -d "$SRC/drivers/net/netdevsim" ]; then
    log "extracting drivers/net/netdevsim from linux-source-$srcmajor"
    rm -rf "$CACHE/src/tmp"; mkdir -p "$CACHE/src/tmp" "$SRC/drivers/net"
    dpkg -x "$(compgen -G "$srcdeb_glob" | head -1)" "$CACHE/src/tmp"
    tar -xJf "$CACHE/src/tmp/usr/src/linux-source-$srcmajor.tar.xz" -C "$CACHE/src/tmp" \
        "linux-source-$srcmajor/drivers/net/netdevsim"
    mv "$CACHE/src/tmp/linux-source-$srcmajor/drivers/net/netdevsim" "$SRC/drivers/net/"
    rm -rf "$CACHE/src/tmp"
fi
step="building netdevsim (patched)"
B=$CACHE/build/$KREL/nsim-${patch_sum:0:12}
if [ ! -s "$B/netdevsim.ko" ]; then
    log "building netdevsim with $(basename "$PATCH")"
    rm -rf "$B"; mkdir -p "$B"
    cp -r "$SRC/drivers/net/netdevsim/." "$B/"
    (cd "$B" && patch -s -p4 < "$PATCH") || die "applying $PATCH"
    make -s -C "$H" M="$B" CONFIG_NETDEVSIM=m CONFIG_DEBUG_INFO_BTF_MODULES= modules -j"$(nproc)" \
        || die "make netdevsim (see the compiler output above)"
fi
mkdir -p "$MODDIR/updates"
NSIM_KO=$MODDIR/updates/netdevsim.ko
strip --strip-debug -o "$NSIM_KO" "$B/netdevsim.ko"
step="depmod"
depmod -a -b "${MODDIR%/lib/modules/*}" "$KREL" || die "depmod"
grep -q '^updates/netdevsim.ko' "$MODDIR/modules.dep" || die "netdevsim.ko missing from modules.dep"

# 6. virtme-ng in its own venv (system python3).
step="pip install virtme-ng==$VNG_VERSION"
VNG=$CACHE/venv/bin/vng
if [ ! -x "$VNG" ] || ! "$CACHE/venv/bin/pip" show virtme-ng 2>/dev/null | grep -qx "Version: $VNG_VERSION"; then
    log "pip install virtme-ng==$VNG_VERSION"
    rm -rf "$CACHE/venv"
    /usr/bin/python3 -m venv "$CACHE/venv" || die "python3 -m venv"
    "$CACHE/venv/bin/pip" install -q "virtme-ng==$VNG_VERSION" || die "pip install virtme-ng==$VNG_VERSION"
fi
"$VNG" --version >/dev/null || die "vng --version"

step="writing $CACHE/env.sh"
cat > "$CACHE/env.sh.new" <<EOF
# written by tests/kernel/setup-host.sh
PFRELAY_KERNEL_CACHE=$CACHE
KREL=$KREL
KIMG=$KIMG
NSIM_KO=$NSIM_KO
VNG=$VNG
EOF
mv "$CACHE/env.sh.new" "$CACHE/env.sh"
printf '%s\n' "$key" > "$CACHE/ready"
step=finished
log "ready: kernel $KREL, netdevsim $NSIM_KO, $("$VNG" --version 2>&1 | head -1)"
