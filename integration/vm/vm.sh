#!/bin/bash
# A Debian 12 test guest under QEMU: pure cgroup v2, systemd 252 as PID 1, AppArmor, Debian's
# kernel 6.1. The image is built once with debootstrap (recipe: recipe.sh) and cached under
# $VM_DIR/base-<hash of the recipe>; every started guest runs on its own qcow2 overlay of that
# base, with its own ssh port on 127.0.0.1 and its own PID file, so several guests can run at once.
#
# Usage: integration/vm/vm.sh COMMAND [ARGS]
#   build               build the base image unless the cached one matches the recipe
#   start               build if needed, boot the guest named $VM_NAME, wait until ssh works
#   ssh [CMD...]        run CMD in the guest as root (a login shell without CMD)
#   scp SRC... DST      copy files; a guest path is written with a leading ':' (e.g. :/root/x)
#   push SRC... DIR     copy local files/dirs into the guest directory DIR (tar over ssh)
#   stop                kill the guest by its PID and remove its overlay
#   status              print the guest's state, PID, port and base image
#   list                print every guest and its state
#   console             print the guest's serial console log
#   env                 print the guest's ssh settings as shell variables (for other scripts)
# Env:
#   VM_NAME=default       the guest's name (one overlay, port, PID file per name)
#   VM_DIR=/var/tmp/rruntime-vm  where images and guests live
#   VM_MEM=6G VM_CPUS=2   guest memory and vCPUs
#   VM_BOOT_TIMEOUT=600   seconds start may wait for ssh (TCG boot takes ~30-60 s when idle)
#   VM_SSH_TIMEOUT=       seconds one `ssh` command may take (default: no bound beyond the caller's)
#   VM_DISK2=FILE         a raw disk image attached as the guest's /dev/vdb (writes discarded)
#   VM_CGROUP=v2          the guest's cgroup layout: v2 (pure cgroup v2, the default), hybrid
#                         (systemd.unified_cgroup_hierarchy=0: v1 controllers, cgroup2 at
#                         /sys/fs/cgroup/unified) or v1 (legacy: also
#                         systemd.legacy_systemd_cgroup_controller=1)
#   VM_KEEP_BUILD=1       keep the build's root directory (debugging)
# Needs root (debootstrap), qemu-system-x86 (bookworm-backports), qemu-utils, debootstrap,
# e2fsprogs, openssh-client. No KVM: this machine's /dev/kvm (PVM) cannot run Debian's kernel,
# so the guest runs under TCG (everything inside is 8-10x slower than on the host).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VM_DIR=${VM_DIR:-/var/tmp/rruntime-vm}
VM_NAME=${VM_NAME:-default}
VM_MEM=${VM_MEM:-6G}
VM_CPUS=${VM_CPUS:-2}
VM_BOOT_TIMEOUT=${VM_BOOT_TIMEOUT:-600}
# Bumped when vm.sh changes how the image is laid out (the recipe is hashed as well).
LAYOUT=1
KERNEL_CMDLINE="root=/dev/vda rw console=ttyS0,115200 net.ifnames=0 mitigations=off quiet loglevel=4"
case "${VM_CGROUP:-v2}" in
    v2) ;;
    hybrid) KERNEL_CMDLINE+=" systemd.unified_cgroup_hierarchy=0" ;;
    v1) KERNEL_CMDLINE+=" systemd.unified_cgroup_hierarchy=0 systemd.legacy_systemd_cgroup_controller=1" ;;
    *)
        echo "vm: VM_CGROUP must be v2, hybrid or v1 (got '$VM_CGROUP')" >&2
        exit 1
        ;;
esac

# shellcheck source=recipe.sh
. "$HERE/recipe.sh"
HASH=$( (cat "$HERE/recipe.sh"; echo "layout=$LAYOUT") | sha256sum | cut -c1-16)
BASE=$VM_DIR/base-$HASH
INST=$VM_DIR/inst/$VM_NAME

die() {
    echo "vm: $*" >&2
    exit 1
}
log() { echo "vm: $*" >&2; }

need() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || die "$c not found (apt-get install: debootstrap qemu-utils e2fsprogs openssh-client; qemu-system-x86 from bookworm-backports)"
    done
}

# --- build ---------------------------------------------------------------------------------

BUILD_ROOT=
BUILD_MOUNTS=()
build_cleanup() {
    local i
    for ((i = ${#BUILD_MOUNTS[@]} - 1; i >= 0; i--)); do
        umount "${BUILD_MOUNTS[$i]}" 2>/dev/null || umount -l "${BUILD_MOUNTS[$i]}" 2>/dev/null || true
    done
    BUILD_MOUNTS=()
    if [ -n "$BUILD_ROOT" ] && [ -z "${VM_KEEP_BUILD:-}" ]; then
        # Only after every mount under it is gone.
        if ! grep -q " $BUILD_ROOT/" /proc/self/mounts; then
            rm -rf "$BUILD_ROOT"
        else
            echo "vm: $BUILD_ROOT still has mounts; not removed" >&2
        fi
    fi
}

build_mount() {
    # build_mount TARGET MOUNT-ARGS...
    local target=$1
    shift
    mount "$@" "$target"
    BUILD_MOUNTS+=("$target")
}

cmd_build() {
    [ "$(id -u)" = 0 ] || die "building the image needs root"
    need debootstrap mkfs.ext4 ssh-keygen chroot
    if [ -f "$BASE/ready" ]; then
        log "image $BASE is up to date"
        return 0
    fi
    mkdir -p "$VM_DIR"
    # Another build (a second helper, a second make) waits for this one. The lock's fd is closed
    # when the build ends, so that no guest started later inherits it.
    exec 9>"$VM_DIR/build.lock"
    flock -w 1800 9 || die "timed out after 30 min waiting for another build ($VM_DIR/build.lock)"
    if [ -f "$BASE/ready" ]; then
        exec 9>&-
        log "image $BASE is up to date"
        return 0
    fi
    local t0=$SECONDS
    rm -rf "$BASE.tmp"
    mkdir -p "$BASE.tmp" "$VM_DIR/debs"
    BUILD_ROOT=$BASE.tmp/root
    trap 'build_cleanup' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    log "debootstrap $SUITE from $MIRROR into $BUILD_ROOT"
    debootstrap --variant=minbase --cache-dir="$VM_DIR/debs" "$SUITE" "$BUILD_ROOT" "$MIRROR" \
        >"$BASE.tmp/debootstrap.log" 2>&1 ||
        { tail -n 20 "$BASE.tmp/debootstrap.log" >&2; die "debootstrap failed (log: $BASE.tmp/debootstrap.log)"; }
    log "debootstrap took $((SECONDS - t0)) s"
    ssh-keygen -q -t ed25519 -N '' -C "rruntime-vm-$HASH" -f "$BASE.tmp/id_ed25519"
    cp "$BASE.tmp/id_ed25519.pub" "$BUILD_ROOT/tmp/vm-key.pub"
    cp "$HERE/recipe.sh" "$BUILD_ROOT/tmp/recipe.sh"
    build_mount "$BUILD_ROOT/proc" -t proc proc
    build_mount "$BUILD_ROOT/sys" -t sysfs -o ro sysfs
    build_mount "$BUILD_ROOT/dev" --bind /dev
    build_mount "$BUILD_ROOT/dev/pts" -t devpts -o newinstance,ptmxmode=0666 devpts
    mkdir -p "$BUILD_ROOT/var/cache/apt/archives"
    build_mount "$BUILD_ROOT/var/cache/apt/archives" --bind "$VM_DIR/debs"
    local t1=$SECONDS
    log "installing packages in the image (log: $BASE.tmp/configure.log)"
    chroot "$BUILD_ROOT" /bin/bash /tmp/recipe.sh configure >"$BASE.tmp/configure.log" 2>&1 ||
        { tail -n 30 "$BASE.tmp/configure.log" >&2; die "configuring the image failed (log: $BASE.tmp/configure.log)"; }
    log "packages and configuration took $((SECONDS - t1)) s"
    rm -f "$BUILD_ROOT/tmp/recipe.sh"
    local i
    for ((i = ${#BUILD_MOUNTS[@]} - 1; i >= 0; i--)); do
        umount "${BUILD_MOUNTS[$i]}"
    done
    BUILD_MOUNTS=()
    # The kernel and initrd are booted directly (no bootloader): take them from the guest's /boot.
    local vmlinuz initrd
    vmlinuz=$(ls "$BUILD_ROOT"/boot/vmlinuz-* | sort -V | tail -n 1)
    initrd=$(ls "$BUILD_ROOT"/boot/initrd.img-* | sort -V | tail -n 1)
    [ -f "$vmlinuz" ] && [ -f "$initrd" ] || die "no kernel/initrd in the image's /boot"
    cp "$vmlinuz" "$BASE.tmp/vmlinuz"
    cp "$initrd" "$BASE.tmp/initrd.img"
    local t2=$SECONDS
    truncate -s "$DISK_SIZE" "$BASE.tmp/disk.raw"
    mkfs.ext4 -q -F -L rruntime-root -d "$BUILD_ROOT" "$BASE.tmp/disk.raw" ||
        die "mkfs.ext4 -d failed"
    log "mkfs.ext4 -d took $((SECONDS - t2)) s"
    build_cleanup
    BUILD_ROOT=
    trap - EXIT INT TERM
    chmod 600 "$BASE.tmp/id_ed25519"
    echo "$HASH" >"$BASE.tmp/ready"
    mv "$BASE.tmp" "$BASE"
    log "built $BASE in $((SECONDS - t0)) s"
    prune_old_bases
    exec 9>&-
}

# Images of older recipes that no running guest uses.
prune_old_bases() {
    local b used n
    for b in "$VM_DIR"/base-*; do
        [ -d "$b" ] || continue
        [ "$b" = "$BASE" ] && continue
        case "$b" in *.tmp) continue ;; esac
        used=
        for n in "$VM_DIR"/inst/*; do
            [ -d "$n" ] || continue
            if [ "$(readlink "$n/base" 2>/dev/null)" = "$b" ] && inst_alive "$n"; then used=1; fi
        done
        [ -z "$used" ] && { log "removing the old image $b"; rm -rf "$b"; }
    done
    return 0
}

# --- guests --------------------------------------------------------------------------------

inst_pid() { cat "$1/pid" 2>/dev/null || true; }

# inst_alive DIR: the guest's qemu is running (its PID file names a live qemu process).
inst_alive() {
    local pid
    pid=$(inst_pid "$1")
    [ -n "$pid" ] && [ -d "/proc/$pid" ] &&
        grep -q qemu-system "/proc/$pid/cmdline" 2>/dev/null
}

free_port() {
    local p used
    used=$(ss -Htan 2>/dev/null | awk '{print $4}' | sed -E 's/.*:([0-9]+)$/\1/' | sort -u)
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % 20000))
        echo "$used" | grep -qx "$p" || { echo "$p"; return 0; }
    done
    die "no free port found"
}

ssh_opts() {
    local base
    base=$(readlink "$INST/base")
    SSH_OPTS=(-i "$base/id_ed25519" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
        -o LogLevel=ERROR -o BatchMode=yes -o ConnectTimeout=10 -o ServerAliveInterval=15
        -o ServerAliveCountMax=8)
    PORT=$(cat "$INST/port")
}

cmd_start() {
    need qemu-system-x86_64 qemu-img ssh
    if inst_alive "$INST"; then
        die "guest $VM_NAME is already running (pid $(inst_pid "$INST"), port $(cat "$INST/port")); vm.sh stop first or set VM_NAME"
    fi
    [ -f "$BASE/ready" ] || cmd_build
    rm -rf "$INST"
    mkdir -p "$INST"
    ln -s "$BASE" "$INST/base"
    qemu-img create -q -f qcow2 -b "$BASE/disk.raw" -F raw "$INST/overlay.qcow2"
    local t0=$SECONDS port tries=0 disk2=()
    if [ -n "${VM_DISK2:-}" ]; then
        [ -f "$VM_DISK2" ] || die "VM_DISK2=$VM_DISK2 is not a file"
        # Writes go to a temporary snapshot, never to the file.
        disk2=(-drive "file=$VM_DISK2,if=virtio,format=raw,snapshot=on")
    fi
    while :; do
        port=$(free_port)
        echo "$port" >"$INST/port"
        : >"$INST/console.log"
        if qemu-system-x86_64 -name "rruntime-vm-$VM_NAME" \
            -accel tcg,thread=multi -cpu max -smp "$VM_CPUS" -m "$VM_MEM" \
            -nodefaults -display none -no-reboot \
            -serial "file:$INST/console.log" \
            -kernel "$BASE/vmlinuz" -initrd "$BASE/initrd.img" -append "$KERNEL_CMDLINE" \
            -drive "file=$INST/overlay.qcow2,if=virtio,format=qcow2,cache=unsafe,discard=unmap" \
            "${disk2[@]}" \
            -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:22" -device virtio-net-pci,netdev=n0 \
            -device virtio-rng-pci \
            -pidfile "$INST/pid" -daemonize 2>"$INST/qemu.err" 9>&-; then
            break
        fi
        tries=$((tries + 1))
        if [ $tries -ge 5 ] || ! grep -qi 'hostfwd\|address already in use\|could not set up host forwarding' "$INST/qemu.err"; then
            cat "$INST/qemu.err" >&2
            die "qemu did not start"
        fi
    done
    log "guest $VM_NAME: qemu pid $(inst_pid "$INST"), ssh on 127.0.0.1:$port; waiting for ssh (at most ${VM_BOOT_TIMEOUT}s)"
    ssh_opts
    local deadline=$((SECONDS + VM_BOOT_TIMEOUT))
    while :; do
        if ! inst_alive "$INST"; then
            tail -n 40 "$INST/console.log" >&2
            die "guest $VM_NAME: qemu exited during boot (console above; $INST/console.log)"
        fi
        if timeout 20 ssh "${SSH_OPTS[@]}" -p "$PORT" root@127.0.0.1 true 2>/dev/null; then
            break
        fi
        if [ $SECONDS -ge $deadline ]; then
            tail -n 40 "$INST/console.log" >&2
            cmd_stop >/dev/null 2>&1 || true
            die "guest $VM_NAME: no ssh after ${VM_BOOT_TIMEOUT}s (console above); guest stopped"
        fi
        sleep 2
    done
    log "guest $VM_NAME is up after $((SECONDS - t0)) s (ssh: VM_NAME=$VM_NAME $0 ssh)"
}

require_running() {
    inst_alive "$INST" || die "guest $VM_NAME is not running (VM_NAME=$VM_NAME $0 start)"
    ssh_opts
}

cmd_ssh() {
    require_running
    local tty=()
    [ $# -eq 0 ] && [ -t 0 ] && tty=(-t)
    if [ -n "${VM_SSH_TIMEOUT:-}" ]; then
        exec timeout -k 10 "$VM_SSH_TIMEOUT" ssh "${SSH_OPTS[@]}" "${tty[@]}" -p "$PORT" root@127.0.0.1 "$@"
    fi
    exec ssh "${SSH_OPTS[@]}" "${tty[@]}" -p "$PORT" root@127.0.0.1 "$@"
}

cmd_scp() {
    require_running
    [ $# -ge 2 ] || die "usage: vm.sh scp SRC... DST (guest paths start with ':')"
    local a args=()
    for a in "$@"; do
        case "$a" in :*) args+=("root@127.0.0.1$a") ;; *) args+=("$a") ;; esac
    done
    exec scp "${SSH_OPTS[@]}" -q -r -P "$PORT" "${args[@]}"
}

# push SRC... DIR: tar the local SRCs (relative names kept) into DIR in the guest.
cmd_push() {
    require_running
    [ $# -ge 2 ] || die "usage: vm.sh push SRC... GUEST_DIR"
    local dir=${!#}
    local srcs=("${@:1:$#-1}")
    tar -cf - "${srcs[@]}" | ssh "${SSH_OPTS[@]}" -p "$PORT" root@127.0.0.1 "mkdir -p '$dir' && tar -xf - -C '$dir'"
}

cmd_stop() {
    local pid
    pid=$(inst_pid "$INST")
    if inst_alive "$INST"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            [ -d "/proc/$pid" ] || break
            sleep 0.2
        done
        if [ -d "/proc/$pid" ]; then
            kill -KILL "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do
                [ -d "/proc/$pid" ] || break
                sleep 0.2
            done
        fi
        [ -d "/proc/$pid" ] && die "guest $VM_NAME (pid $pid) did not die"
        log "guest $VM_NAME (pid $pid) stopped"
    else
        log "guest $VM_NAME is not running"
    fi
    rm -rf "$INST"
}

cmd_status() {
    if inst_alive "$INST"; then
        echo "$VM_NAME: running pid=$(inst_pid "$INST") port=$(cat "$INST/port") base=$(readlink "$INST/base")"
    else
        echo "$VM_NAME: not running"
        return 3
    fi
}

cmd_list() {
    local n
    for n in "$VM_DIR"/inst/*; do
        [ -d "$n" ] || continue
        VM_NAME=$(basename "$n") INST=$n cmd_status || true
    done
    if [ -f "$BASE/ready" ]; then echo "image: $BASE (current recipe)"; else echo "image: not built for the current recipe ($BASE)"; fi
}

cmd_env() {
    require_running
    echo "VM_PORT=$PORT"
    echo "VM_KEY=$(readlink "$INST/base")/id_ed25519"
    echo "VM_PID=$(inst_pid "$INST")"
    echo "VM_SSH='ssh ${SSH_OPTS[*]} -p $PORT root@127.0.0.1'"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
    build) cmd_build ;;
    start) cmd_start ;;
    ssh) cmd_ssh "$@" ;;
    scp) cmd_scp "$@" ;;
    push) cmd_push "$@" ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    list) cmd_list ;;
    console) cat "$INST/console.log" ;;
    env) cmd_env ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
