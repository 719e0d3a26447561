#!/usr/bin/env bash
# Builds the real Asterisk 20 and its GSM channel drivers (chan_dongle and both chan_quectel
# forks) from source tarballs into a cache outside the checkout, for the real-driver test tier.
#
#   tests/real/build.sh SOURCES_DIR [CACHE_DIR]
#
# SOURCES_DIR holds asterisk-20.20.1.tar.xz, chan_dongle-*.tar.xz, chan_quectel-im-*.tar.xz,
# chan_quectel-re-*.tar.xz and their SHA256SUMS (docs/real-asterisk.md says where they come
# from). The build lands in CACHE_DIR/<key>, key = the checksum of SHA256SUMS, and is reused
# while that key stays the same; it prints that directory on its last line. A build takes
# 3-7 minutes on 2 cores; a cached one, none.
set -euo pipefail

src=$(cd "${1:?usage: build.sh SOURCES_DIR [CACHE_DIR]}" && pwd)
cache=${2:-${DONGLED_REAL_CACHE:-/var/cache/dongled-real}}
cd "$src"
sha256sum --quiet -c SHA256SUMS
key=$(sha256sum SHA256SUMS | cut -c1-16)
out="$cache/$key"
if [ -f "$out/.complete" ]; then
    echo "$out"
    exit 0
fi

if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    # Asterisk, chan_dongle and chan_quectel IM (autotools), RE (CMake >= 3.22, ALSA).
    pkgs=(gcc g++ make pkg-config autoconf automake libtool cmake xz-utils patch
          libedit-dev libjansson-dev libsqlite3-dev uuid-dev libxml2-dev libssl-dev
          libasound2-dev)
    if ! dpkg-query -W "${pkgs[@]}" >/dev/null 2>&1; then
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 \
            "${pkgs[@]}" >/dev/null
    fi
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/.build-XXXXXX")
# Asterisk keeps its install prefix in the binary (its libraries' path): build in place, and
# mark the tree complete only at the very end.
prefix="$out"
rm -rf "$prefix"
trap 'rm -rf "$work"; [ -f "$prefix/.complete" ] || rm -rf "$prefix"' EXIT
mkdir -p "$prefix/drivers" "$work/src"
jobs=$(nproc)

tar -xJf "$src"/asterisk-*.tar.xz -C "$work/src"
tar -xJf "$src"/chan_dongle-*.tar.xz -C "$work/src"
tar -xJf "$src"/chan_quectel-im-*.tar.xz -C "$work/src"
tar -xJf "$src"/chan_quectel-re-*.tar.xz -C "$work/src"

log="$work/build.log"
step() { echo "build.sh: $*" >&2; }
fail() { echo "build.sh: failed; the last lines of the log:" >&2; tail -n 40 "$log" >&2; exit 1; }

step "Asterisk: configure"
(
    cd "$work"/src/asterisk-*/
    ./configure --prefix="$prefix" --without-pjproject-bundled --without-pjproject \
        --without-jansson-bundled --without-libjwt-bundled --without-libjwt --without-libxslt \
        --disable-xmldoc --without-gtk2 --without-sdl
    make menuselect.makeopts
    menuselect/menuselect --disable-all \
        --enable bridge_builtin_features --enable bridge_builtin_interval_features \
        --enable bridge_holding --enable bridge_native_rtp --enable bridge_simple \
        --enable bridge_softmix \
        --enable app_dial --enable app_echo --enable app_playback --enable app_verbose \
        --enable app_system --enable app_stack --enable app_originate \
        --enable func_callerid --enable func_base64 --enable func_strings --enable func_logic \
        --enable func_global --enable func_channel --enable pbx_config --enable codec_ulaw \
        --enable codec_alaw --enable format_wav --enable format_pcm --enable res_musiconhold \
        menuselect.makeopts
) >>"$log" 2>&1 || fail
step "Asterisk: make -j$jobs (the long step)"
(
    cd "$work"/src/asterisk-*/
    make -j"$jobs"
    make install
    make install-headers
) >>"$log" 2>&1 || fail
astver=$(basename "$work"/src/asterisk-*/ | sed 's/^asterisk-//')

for d in chan_dongle chan_quectel-im; do
    step "$d: bootstrap, configure, make"
    (
        cd "$work"/src/"$d"-*/
        ./bootstrap
        ./configure --with-astversion="$astver" --with-asterisk="$prefix/include" \
            DESTDIR="$prefix/lib/asterisk/modules"
        make -j"$jobs"
    ) >>"$log" 2>&1 || fail
done
cp "$work"/src/chan_dongle-*/chan_dongle.so "$prefix/drivers/chan_dongle.so"
cp "$work"/src/chan_quectel-im-*/chan_quectel.so "$prefix/drivers/chan_quectel-im.so"

step "chan_quectel-re: cmake"
(
    cd "$work"/src/chan_quectel-re-*/
    # RE's version string comes from this epoch (its commit's time); do not install (targets /usr).
    SOURCE_DATE_EPOCH=1718430875 cmake --preset default -DASTERISK_VERSION_NUM=202001 \
        -DAST_HEADER_DIR="$prefix/include"
    cmake --build --preset default
) >>"$log" 2>&1 || fail
cp "$work"/src/chan_quectel-re-*/build/src/chan_quectel.so "$prefix/drivers/chan_quectel-re.so"

cp SHA256SUMS "$prefix/SHA256SUMS"
cp "$log" "$prefix/build.log"
touch "$prefix/.complete"
echo "$out"
