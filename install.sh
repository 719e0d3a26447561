#!/usr/bin/env bash
# Installs dongled on a Debian/Ubuntu box and starts it as the asterisk user: as a systemd
# service where systemd runs, otherwise `dongled run` in the foreground. Re-running it upgrades
# in place. Run it as root, or with sudo. What it changes on the system: docs/install.md.
#
#   sudo ./install.sh               install or upgrade, then start
#   sudo ./install.sh --uninstall   stop and remove dongled (keeps /etc/dongled, dongle.conf
#                                   and quectel.conf)
#   sudo ./install.sh --purge       as --uninstall, and remove /etc/dongled too
set -euo pipefail
cd "$(dirname "$0")"

usage() { sed -n '2,11s/^# \{0,1\}//p' "$0"; }
die() { echo "install.sh: $*" >&2; exit 1; }

mode=install
case "${1:-}" in
    "") ;;
    --uninstall) mode=uninstall ;;
    --purge) mode=purge ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || die "run as root, or with sudo (sudo ./install.sh)"

# Test-only (tests/project/test_install.py): a directory standing in for /, another interpreter, and
# DONGLED_TEST_PIP_OPTIONS for pip. Never set on a real box.
root="${DONGLED_TEST_ROOT:-}"
# The distribution's interpreter, never whatever python3 comes first in root's PATH: a pyenv
# or conda interpreter under /root cannot be run by the asterisk user (203/EXEC).
python="${DONGLED_TEST_PYTHON:-/usr/bin/python3}"

venv="$root/opt/dongled"
link="$root/usr/local/bin/dongled"
unit="$root/etc/systemd/system/dongled.service"
rules="$root/etc/udev/rules.d/77-dongled.rules"
etc="$root/etc/dongled"

have_systemd() { [ -d "$root/run/systemd/system" ]; }

if [ "$mode" != install ]; then
    if have_systemd; then
        systemctl disable --now dongled.service 2>/dev/null || true
    fi
    rm -f "$unit"
    if have_systemd; then systemctl daemon-reload; fi
    rm -f "$rules"
    if command -v udevadm >/dev/null; then udevadm control --reload 2>/dev/null || true; fi
    # only our own symlink, never someone else's binary of the same name
    if [ "$(readlink "$link" 2>/dev/null)" = "$venv/bin/dongled" ]; then
        rm -f "$link"
    fi
    rm -rf "$venv" "$root/run/dongled"
    if [ "$mode" = purge ]; then
        rm -rf "$etc"
    fi
    echo "install.sh: dongled removed.$([ "$mode" = purge ] || echo ' Settings kept in /etc/dongled.')"
    echo "install.sh: dongle.conf and quectel.conf are left as they are (imei= lines are"
    echo "            harmless to chan_dongle and chan_quectel); a section whose stick was absent"
    echo "            stays parked on /dev/null/dongled-stick-absent-* paths (and alsadev="
    echo "            hw:CARD=dongled_card_absent) until you point it at its ports yourself."
    echo "            dongle.conf.dongled-bak and quectel.conf.dongled-bak are dongled's last"
    echo "            backups; delete them if unwanted."
    exit 0
fi

# dongled runs as the asterisk user, never as root (root opens ttys past chan_dongle's
# TIOCEXCL): without that user there is nothing to run it as; say so before changing anything.
getent passwd asterisk >/dev/null \
    || die "no asterisk user: install Asterisk (and chan_dongle) first, then re-run install.sh"

# ---- packages: the distribution's python3, venv and python3-systemd; nothing is built ----
export DEBIAN_FRONTEND=noninteractive
packages=(python3 python3-venv python3-systemd)
apt-get update -q
# A PBX's systemd is upgraded in a maintenance window, not as a side effect of installing
# dongled: refuse if any of these would be upgraded or installed anew.
plan=$(apt-get -s install -y --no-install-recommends "${packages[@]}")
touched=$(sed -n 's/^Inst \(systemd\|libsystemd0\|udev\|libudev1\|systemd-[a-z-]*\) .*/\1/p' \
    <<<"$plan" | tr '\n' ' ')
if [ -n "$touched" ]; then
    die "installing ${packages[*]} would upgrade ${touched% }; upgrade the box first" \
        "(apt-get upgrade, in a maintenance window), then re-run install.sh"
fi
apt-get install -y -q --no-install-recommends "${packages[@]}" >/dev/null
[ -x "$python" ] || die "$python is missing (apt-get install python3)"

# ---- the private environment in /opt/dongled -----------------------------------------------
# --system-site-packages: systemd-python comes from python3-systemd (no gcc, no
# libsystemd-dev); the others are installed into the venv itself, at the versions of
# constraints.txt (pyproject.toml gives only ranges).
want=$(readlink -f "$python")
if [ -e "$venv" ]; then
    have=$(readlink -f "$venv/bin/python" 2>/dev/null || true)
    if [ "$have" != "$want" ] \
        || ! grep -qx 'include-system-site-packages = true' "$venv/pyvenv.cfg" 2>/dev/null; then
        echo "install.sh: $venv was made by ${have:-another interpreter}; rebuilding it with $want"
        rm -rf "$venv"
    fi
fi
"$python" -m venv --system-site-packages "$venv"
# shellcheck disable=SC2086  # test-only options, word-split on purpose
"$venv/bin/pip" install -q -c constraints.txt ${DONGLED_TEST_PIP_OPTIONS:-} .
install -m 0644 README.md "$venv/README.md"
# The manual keeps its layout, so README.md's links into docs/ work where it is installed.
install -d -m 0755 "$venv/docs"
install -m 0644 docs/*.md "$venv/docs/"
install -d -m 0755 "$(dirname "$link")"
ln -sf "$venv/bin/dongled" "$link"

# ---- the service user --------------------------------------------------------------------
# dongled runs as the asterisk user (docs/operations.md, "Which user"): it needs what chan_dongle
# needs, the ttys (group dialout), /var/lock, and /etc/asterisk.
service_group=asterisk
id -nG asterisk | grep -qw dialout || usermod -aG dialout asterisk
for conf in dongle.conf quectel.conf; do  # chan_dongle's, chan_quectel's (either fork)
    if [ -e "$root/etc/asterisk/$conf" ]; then
        chown asterisk:asterisk "$root/etc/asterisk/$conf"
    else
        # dongled replaces the file with a rename that keeps its owner: one created later as
        # root cannot be written (dongled says so at start and in `dongled status` too).
        echo "install.sh: note: no /etc/asterisk/$conf yet; if you create it later, make it" \
             "the asterisk user's: chown asterisk:asterisk /etc/asterisk/$conf" >&2
    fi
done
if ! runuser -u asterisk -- test -w "$root/etc/asterisk"; then
    echo "install.sh: warning: the asterisk user cannot write /etc/asterisk;" \
         "dongled replaces dongle.conf (quectel.conf) with a rename there" \
         "(chown asterisk /etc/asterisk)" >&2
fi
if ! said=$(runuser -u asterisk -- "$venv/bin/dongled" --version 2>&1); then
    die "the asterisk user cannot run $venv/bin/dongled --version: ${said:-no output}." \
        "Its interpreter is $(readlink -f "$venv/bin/python"); every directory down to it" \
        "must be readable by asterisk."
fi

# ---- settings: readable by every admin (for `dongled status`); the secret is not --------
install -d -m 0755 "$etc"
settings="$etc/dongled.toml"
[ -e "$settings" ] || install -m 0644 etc/dongled.toml "$settings"
if grep -Eq '^[[:space:]]*secret[[:space:]]*=' "$settings"; then
    chgrp "$service_group" "$settings"
    chmod 0640 "$settings"
    echo "install.sh: note: $settings holds the AMI secret itself, so only root and group" \
         "$service_group may read it (and run dongled status); move it to" \
         "$etc/ami-secret with secret_file (docs/install.md)" >&2
else
    chmod 0644 "$settings"
fi
if [ -e "$etc/ami-secret" ]; then
    chown "root:$service_group" "$etc/ami-secret"
    chmod 0640 "$etc/ami-secret"
fi
install -D -m 0644 udev/77-dongled.rules "$rules"
if command -v udevadm >/dev/null; then
    udevadm control --reload 2>/dev/null || true
    udevadm trigger --subsystem-match=tty --subsystem-match=usb --action=change 2>/dev/null || true
fi

# ---- start ---------------------------------------------------------------------------------
if have_systemd; then
    install -D -m 0644 systemd/dongled.service "$unit"
    systemctl daemon-reload
    systemctl enable dongled.service
    systemctl restart dongled.service
    systemctl --no-pager status dongled.service || true
else
    # what systemd's RuntimeDirectory= would make: the status snapshot's directory
    install -d -m 0755 "$root/run/dongled"
    chown asterisk:asterisk "$root/run/dongled"
    echo "install.sh: no systemd here; running dongled as asterisk in the foreground" \
         "(Ctrl-C stops it)"
    exec runuser -u asterisk -- "$link" run
fi
