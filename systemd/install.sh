#!/bin/sh
# Installs owncast-py as a systemd service; `make systemd-install` runs it as root with the
# wheel it just built. Usage: install.sh WHEEL
#
#   PREFIX         where the virtualenv goes (/opt/owncast: $PREFIX/venv)
#   SYSTEM_PYTHON  the Python the virtualenv is made from (/usr/bin/python3)
#   DESTDIR        stage everything under this directory instead (no user is made, no
#                  systemctl is run): what the tests do
#
# The service runs with ProtectHome=yes, so neither the virtualenv nor the Python it was
# made from may live under /home, /root or /run/user: a pyenv or conda Python there would
# leave the unit failing with status 203/EXEC. A virtualenv made with --copies does not
# help either (the copied interpreter still loads its standard library from home), so a
# Python like that is refused here: install Debian's (apt-get install python3 python3-venv).
set -eu

wheel=${1:?usage: install.sh WHEEL}
PREFIX=${PREFIX:-/opt/owncast}
SYSTEM_PYTHON=${SYSTEM_PYTHON:-/usr/bin/python3}
DESTDIR=${DESTDIR:-}
here=$(cd "$(dirname "$0")" && pwd)
checkout=$(dirname "$here")
venv="$DESTDIR$PREFIX/venv"

say() { printf 'systemd-install: %s\n' "$*"; }
fail() { say "$*" >&2; exit 1; }

under_home() {
    case "$1" in
        /home/* | /root/* | /run/user/*) return 0 ;;
        *) return 1 ;;
    esac
}

if [ -z "$DESTDIR" ] && [ "$(id -u)" != 0 ]; then
    fail "run me as root (sudo make systemd-install)"
fi
[ -x "$SYSTEM_PYTHON" ] || fail "no $SYSTEM_PYTHON: apt-get install python3 python3-venv"
real_python=$(readlink -f "$SYSTEM_PYTHON")
if under_home "$real_python"; then
    fail "$SYSTEM_PYTHON is $real_python, under a home directory the service cannot see" \
        "(ProtectHome=yes); use a system Python: SYSTEM_PYTHON=/usr/bin/python3"
fi
if under_home "$PREFIX/"; then
    fail "PREFIX=$PREFIX is under a home directory the service cannot see (ProtectHome=yes)"
fi
"$SYSTEM_PYTHON" -c 'import ensurepip, venv' 2>/dev/null \
    || fail "$SYSTEM_PYTHON has no venv module: apt-get install python3-venv"

say "virtualenv of $real_python in $venv"
[ -x "$venv/bin/python" ] || "$SYSTEM_PYTHON" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade "$wheel"
# The same version number may be a newer build: replace the package itself.
"$venv/bin/pip" install --quiet --force-reinstall --no-deps "$wheel"
# twistd finds the plugin by scanning twisted/plugins; write its cache now, since the
# service may not write under $PREFIX (ProtectSystem=strict).
"$venv/bin/python" -c 'from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))'
install -D -m 0644 "$checkout/README.md" "$DESTDIR$PREFIX/README.md"

ini="$DESTDIR/etc/owncast/owncast.ini"
if [ -e "$ini" ]; then
    say "keeping $ini"
else
    install -D -m 0644 "$checkout/etc/owncast.ini" "$ini"
fi
unit="$DESTDIR/etc/systemd/system/owncast.service"
mkdir -p "$(dirname "$unit")"
sed "s|/opt/owncast|$PREFIX|g" "$here/owncast.service" > "$unit"
chmod 0644 "$unit"

if [ -n "$DESTDIR" ]; then
    say "staged under $DESTDIR"
    exit 0
fi
if ! id -u owncast > /dev/null 2>&1; then
    useradd --system --home-dir /var/lib/owncast --no-create-home \
        --shell /usr/sbin/nologin owncast
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    say "installed; start it with: systemctl enable --now owncast"
else
    say "installed, but systemd is not running here: start it where it is"
fi
