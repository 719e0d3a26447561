#!/usr/bin/env bash
# Installs dongled on a Debian/Ubuntu box and starts it: as a systemd service where systemd
# runs, otherwise `dongled run` in the foreground. Re-running it upgrades in place.
set -euo pipefail
cd "$(dirname "$0")"
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (sudo ./install.sh)" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# systemd-python builds against libsystemd; python3-venv for the private environment.
apt-get install -y -q --no-install-recommends \
    python3 python3-venv python3-dev gcc pkg-config libsystemd-dev >/dev/null

python3 -m venv /opt/dongled
/opt/dongled/bin/pip install -q --upgrade pip
/opt/dongled/bin/pip install -q .
ln -sf /opt/dongled/bin/dongled /usr/local/bin/dongled

install -d -m 0755 /etc/dongled
[ -e /etc/dongled/dongled.toml ] || install -m 0640 etc/dongled.toml /etc/dongled/dongled.toml
install -m 0644 udev/77-dongled.rules /etc/udev/rules.d/77-dongled.rules
command -v udevadm >/dev/null && udevadm control --reload 2>/dev/null || true

if [ -d /run/systemd/system ]; then
    install -m 0644 systemd/dongled.service /etc/systemd/system/dongled.service
    systemctl daemon-reload
    systemctl enable --now dongled.service
    systemctl --no-pager status dongled.service || true
else
    echo "install.sh: no systemd here; running dongled in the foreground (Ctrl-C stops it)"
    exec /usr/local/bin/dongled run
fi
