#!/bin/bash
# The recipe of the Debian 12 test guest (pure cgroup v2, systemd 252, AppArmor, kernel 6.1).
#
# vm.sh sources this file for the variables below and hashes its whole text: any change here
# builds a new image (cached under /var/tmp/rruntime-vm/base-<hash>). Inside the debootstrapped
# root, vm.sh runs `recipe.sh configure` (chrooted) to install the packages and set the guest up.

SUITE=bookworm
MIRROR=http://deb.debian.org/debian
# Sparse raw disk; each started guest writes to its own qcow2 overlay on top of it.
DISK_SIZE=24G
# Everything the test suite, the caller scripts (integration/callers) and the bench need
# (rootless Podman: uidmap, slirp4netns, fuse-overlayfs; dbus-user-session for the session bus
# of a user's systemd manager, which rootless --systemd-cgroup talks to).
PACKAGES="systemd systemd-sysv dbus udev kmod linux-image-amd64 initramfs-tools
openssh-server ca-certificates apparmor
busybox-static runc crun containerd docker.io podman conmon catatonit netavark containernetworking-plugins
slirp4netns uidmap fuse-overlayfs dbus-user-session criu jq iproute2 iptables procps util-linux passwd curl
hyperfine time gcc libc6-dev make strace less psmisc e2fsprogs"

configure() {
    set -euo pipefail
    export DEBIAN_FRONTEND=noninteractive LC_ALL=C
    # No service may start while packages install in the chroot.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    echo 'rruntime-vm' >/etc/hostname
    printf '127.0.0.1 localhost\n127.0.1.1 rruntime-vm\n::1 localhost ip6-localhost\n' >/etc/hosts
    cat >/etc/apt/sources.list <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
EOF
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $PACKAGES
    # (The .debs stay in vm.sh's cache, bind-mounted on /var/cache/apt/archives: no apt-get clean.)

    # The disk, the network (user-mode: DHCP from QEMU, its DNS at 10.0.2.3) and the console.
    printf '/dev/vda / ext4 defaults,noatime 0 1\n' >/etc/fstab
    mkdir -p /etc/systemd/network
    printf '[Match]\nName=e*\n\n[Network]\nDHCP=ipv4\n' >/etc/systemd/network/80-dhcp.network
    rm -f /etc/resolv.conf
    printf 'nameserver 10.0.2.3\n' >/etc/resolv.conf
    systemctl enable systemd-networkd ssh
    # Nothing that would eat the (emulated, slow) CPU or start a second copy of a caller's
    # daemon: the caller scripts start containerd/dockerd themselves.
    systemctl disable containerd docker docker.socket 2>/dev/null || true
    systemctl mask systemd-networkd-wait-online apt-daily.timer apt-daily-upgrade.timer \
        man-db.timer e2scrub_all.timer fstrim.timer dpkg-db-backup.timer logrotate.timer \
        podman-auto-update.timer podman-auto-update.service podman-restart.service \
        e2scrub_reap.service

    # Root logs in with the image's ssh key only.
    mkdir -p /root/.ssh
    chmod 700 /root/.ssh
    cat /tmp/vm-key.pub >/root/.ssh/authorized_keys
    chmod 600 /root/.ssh/authorized_keys
    rm -f /tmp/vm-key.pub
    printf 'UseDNS no\nPermitRootLogin prohibit-password\n' >/etc/ssh/sshd_config.d/rruntime.conf
    # One machine id for the image (guests are disposable overlays of it).
    rm -f /etc/machine-id /var/lib/dbus/machine-id
    systemd-machine-id-setup
    # Journald in memory only: less emulated disk I/O.
    mkdir -p /etc/systemd/journald.conf.d
    printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=64M\n' >/etc/systemd/journald.conf.d/rruntime.conf
    rm -f /usr/sbin/policy-rc.d
}

if [ "${1:-}" = configure ]; then
    configure
fi
