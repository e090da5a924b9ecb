# Shared by integration scripts (sourced, POSIX sh): builds a busybox OCI bundle from the
# busybox-static package.
#
#   . integration/lib/bundle.sh
#   bundle_rootfs DIR                 # DIR/rootfs: static busybox, its applet links, passwd/group
#   bundle_config DIR ARGS_JSON       # DIR/config.json running ARGS_JSON (a JSON array)
#
# bundle_config reads these optional variables (defaults in brackets):
#   BUNDLE_HOSTNAME       [rruntime]
#   BUNDLE_OCI_VERSION    [1.2.0]; crun 1.8 only accepts 1.0.x
#   BUNDLE_RESOURCES      linux.resources object [devices deny-all only]
#   BUNDLE_ROOT_PATH      root.path [rootfs]; an absolute path shares another bundle's rootfs
#   BUNDLE_CGROUPS_PATH   linux.cgroupsPath [none: the runtime's default, /<id>]
#   BUNDLE_MOUNTS         "spec": the mounts `runc spec` generates (proc, /dev tmpfs, devpts,
#                         shm, mqueue, sysfs, cgroup); "demo" [default]: proc, /dev tmpfs, devpts,
#                         shm, sysfs, /tmp tmpfs (and maskedPaths to match: runc spec's list, or
#                         the short demo list)
# and BUSYBOX [/bin/busybox] for the busybox binary.

bundle_check() {
    BUSYBOX=${BUSYBOX:-/bin/busybox}
    if ! "$BUSYBOX" --list >/dev/null 2>&1; then
        echo "bundle: a static busybox is needed at $BUSYBOX (apt-get install -y busybox-static)" >&2
        return 1
    fi
}

bundle_rootfs() {
    bundle_check || return 1
    _d=$1
    rm -rf "$_d/rootfs"
    mkdir -p "$_d/rootfs/bin" "$_d/rootfs/etc" "$_d/rootfs/proc" "$_d/rootfs/sys" \
             "$_d/rootfs/dev" "$_d/rootfs/tmp" "$_d/rootfs/root" || return 1
    cp "$BUSYBOX" "$_d/rootfs/bin/busybox" || return 1
    for _app in $("$BUSYBOX" --list); do
        [ "$_app" = busybox ] || ln -s busybox "$_d/rootfs/bin/$_app" || return 1
    done
    echo 'root:x:0:0:root:/root:/bin/sh' > "$_d/rootfs/etc/passwd"
    echo 'root:x:0:' > "$_d/rootfs/etc/group"
}

bundle_config() {
    _d=$1
    _args=$2
    _host=${BUNDLE_HOSTNAME:-rruntime}
    _ver=${BUNDLE_OCI_VERSION:-1.2.0}
    _root=${BUNDLE_ROOT_PATH:-rootfs}
    _res=${BUNDLE_RESOURCES:-'{"devices": [{"allow": false, "access": "rwm"}]}'}
    _cg=
    [ -z "${BUNDLE_CGROUPS_PATH:-}" ] || _cg="\"cgroupsPath\": \"$BUNDLE_CGROUPS_PATH\","
    case "${BUNDLE_MOUNTS:-demo}" in
    spec) _mounts='
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}'
        _masked='"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"' ;;
    demo) _mounts='
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]}'
        _masked='"/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"' ;;
    *) echo "bundle: BUNDLE_MOUNTS must be spec or demo" >&2; return 1 ;;
    esac
    cat > "$_d/config.json" <<JSON
{
  "ociVersion": "$_ver",
  "process": {
    "terminal": false,
    "user": {"uid": 0, "gid": 0},
    "args": $_args,
    "env": ["PATH=/bin", "TERM=xterm"],
    "cwd": "/",
    "capabilities": {
      "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    },
    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
    "noNewPrivileges": true
  },
  "root": {"path": "$_root", "readonly": true},
  "hostname": "$_host",
  "mounts": [$_mounts
  ],
  "linux": {
    $_cg
    "resources": $_res,
    "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
    "maskedPaths": [$_masked],
    "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
  }
}
JSON
}
