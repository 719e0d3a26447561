#!/usr/bin/env bash
# Installs dongled on a Debian/Ubuntu box and starts it: as a systemd service where systemd
# runs, otherwise `dongled run` in the foreground. Re-running it upgrades in place.
#
#   sudo ./install.sh               install or upgrade, then start
#   sudo ./install.sh --uninstall   stop and remove dongled (keeps /etc/dongled and dongle.conf)
#   sudo ./install.sh --purge       as --uninstall, and remove /etc/dongled too
set -euo pipefail
cd "$(dirname "$0")"

usage() { sed -n '2,8s/^# \{0,1\}//p' "$0"; }

mode=install
case "${1:-}" in
    "") ;;
    --uninstall) mode=uninstall ;;
    --purge) mode=purge ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (sudo ./install.sh)" >&2; exit 1; }

have_systemd() { [ -d /run/systemd/system ]; }

if [ "$mode" != install ]; then
    if have_systemd; then
        systemctl disable --now dongled.service 2>/dev/null || true
    fi
    rm -f /etc/systemd/system/dongled.service
    have_systemd && systemctl daemon-reload
    rm -f /etc/udev/rules.d/77-dongled.rules
    command -v udevadm >/dev/null && udevadm control --reload 2>/dev/null || true
    # only our own symlink, never someone else's binary of the same name
    if [ "$(readlink /usr/local/bin/dongled 2>/dev/null)" = /opt/dongled/bin/dongled ]; then
        rm -f /usr/local/bin/dongled
    fi
    rm -rf /opt/dongled /run/dongled
    if [ "$mode" = purge ]; then
        rm -rf /etc/dongled
    fi
    echo "install.sh: dongled removed.$([ "$mode" = purge ] || echo ' Settings kept in /etc/dongled.')"
    echo "install.sh: dongle.conf is left as it is (imei= lines are harmless to chan_dongle);"
    echo "            dongle.conf.dongled-bak is dongled's last backup, delete it if unwanted."
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# systemd-python builds against libsystemd; python3-venv for the private environment.
apt-get install -y -q --no-install-recommends \
    python3 python3-venv python3-dev gcc pkg-config libsystemd-dev >/dev/null

python3 -m venv /opt/dongled
/opt/dongled/bin/pip install -q --upgrade pip
/opt/dongled/bin/pip install -q .
install -m 0644 README.md /opt/dongled/README.md
# The manual keeps its layout, so README.md's links into docs/ work where it is installed.
install -d -m 0755 /opt/dongled/docs
install -m 0644 docs/*.md /opt/dongled/docs/
rm -f /opt/dongled/benchmarks.md /opt/dongled/reliability.md  # flat copies of older versions
ln -sf /opt/dongled/bin/dongled /usr/local/bin/dongled

# dongled runs as the asterisk user (see docs/operations.md, "Which user"): it needs what
# chan_dongle needs, the ttys (group dialout), /var/lock, and /etc/asterisk.
service_group=root
if getent passwd asterisk >/dev/null; then
    service_group=asterisk
    id -nG asterisk | grep -qw dialout || usermod -aG dialout asterisk
    if [ -e /etc/asterisk/dongle.conf ]; then
        chown asterisk:asterisk /etc/asterisk/dongle.conf
    fi
    if ! runuser -u asterisk -- test -w /etc/asterisk; then
        echo "install.sh: warning: the asterisk user cannot write /etc/asterisk;" \
             "dongled replaces dongle.conf with a rename there (chown asterisk /etc/asterisk)" >&2
    fi
fi

install -d -m 0755 /etc/dongled
# The settings may hold the AMI secret: readable by root and the service's group only.
[ -e /etc/dongled/dongled.toml ] || install -m 0640 etc/dongled.toml /etc/dongled/dongled.toml
chgrp "$service_group" /etc/dongled/dongled.toml
[ -e /etc/dongled/ami-secret ] && chgrp "$service_group" /etc/dongled/ami-secret \
    && chmod 0640 /etc/dongled/ami-secret
install -D -m 0644 udev/77-dongled.rules /etc/udev/rules.d/77-dongled.rules
if command -v udevadm >/dev/null; then
    udevadm control --reload 2>/dev/null || true
    udevadm trigger --subsystem-match=tty --subsystem-match=usb --action=change 2>/dev/null || true
fi

if have_systemd; then
    if [ "$service_group" = root ]; then
        echo "install.sh: no asterisk user: install Asterisk (and chan_dongle) first" >&2
        exit 1
    fi
    install -m 0644 systemd/dongled.service /etc/systemd/system/dongled.service
    systemctl daemon-reload
    systemctl enable dongled.service
    systemctl restart dongled.service
    systemctl --no-pager status dongled.service || true
else
    echo "install.sh: no systemd here; running dongled in the foreground (Ctrl-C stops it)"
    exec /usr/local/bin/dongled run
fi
