#!/bin/sh
# Installs the Debian packages the test suite needs on the control machine (root, Debian 12).
# Idempotent: packages already present are left alone; `apt-get update` runs at most once,
# and only when something is missing.
#
# Tier 2 (tests/e2e, tests/support/nspawn.py: disposable systemd hosts):
#   systemd-container  systemd-nspawn boots each test host with systemd as PID 1
#   debootstrap        builds the cached Debian 12 (and, on demand, 11) base rootfs the hosts share
#   iproute2           `ip` creates the bridge the hosts are attached to
#   openssh-client     `ssh`/`ssh-keygen`: per-run key pair, per-host host keys, test commands
#   util-linux         `mount` (overlayfs per host), `setsid`
#   coreutils          `chroot` while building the base rootfs
#   debian-archive-keyring  lets debootstrap verify the Debian archive (Debian 12's also
#                      holds bullseye's keys)
#
# Tier 1 (tests/integration, the demo: real sshd and redis-server on loopback):
#   openssh-server     sshd for the simulated hosts (started by the tests on 127.0.1.N)
#   redis-server       a real server for probes and fixes; redis-tools for redis-cli
#   sudo               become with a password, as on real fleets
#   openssl            self-signed certificates for the TLS probe test
#   python3-venv       `make` creates the project's virtualenv with it
#   procps             pgrep: tests find the processes of their own sshd daemons
#
# Package scripts must not start daemons on this machine (there is no systemd here, so
# invoke-rc.d would start the system redis-server on 6379): a temporary policy-rc.d forbids it.
#
# Add more packages to PACKAGES below, one per line.
set -eu

PACKAGES="
systemd-container
debootstrap
iproute2
openssh-client
util-linux
coreutils
debian-archive-keyring
openssh-server
redis-server
redis-tools
sudo
openssl
python3-venv
procps
"

missing=""
for pkg in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done

if [ -z "$missing" ]; then
    echo "install-test-deps: all test packages already installed"
    exit 0
fi

echo "install-test-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi
apt-get update
# shellcheck disable=SC2086  # word splitting of the package list is intended
apt-get install -y --no-install-recommends $missing
