#!/bin/sh
# Builds a busybox bundle (from the busybox-static package) and runs a container from it with
# the given rruntime binary: prints its kernel, hostname, user and processes, then exits.
set -eu
RT=${1:-target/release/rruntime}
DIR=${2:-./demo-bundle}
BUSYBOX=${BUSYBOX:-/bin/busybox}
case "$RT" in /*) ;; *) RT="$(pwd)/$RT" ;; esac
if ! "$BUSYBOX" --list >/dev/null 2>&1; then
    echo "demo: a static busybox is needed at $BUSYBOX (apt-get install -y busybox-static)" >&2
    exit 1
fi
if [ "$(id -u)" != 0 ]; then
    echo "demo: run as root (containers need namespaces, mounts and cgroups)" >&2
    exit 1
fi
rm -rf "$DIR"
mkdir -p "$DIR/rootfs/bin" "$DIR/rootfs/etc" "$DIR/rootfs/proc" "$DIR/rootfs/sys" \
         "$DIR/rootfs/dev" "$DIR/rootfs/tmp" "$DIR/rootfs/root"
cp "$BUSYBOX" "$DIR/rootfs/bin/busybox"
for app in $("$BUSYBOX" --list); do
    [ "$app" = busybox ] || ln -s busybox "$DIR/rootfs/bin/$app"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$DIR/rootfs/etc/passwd"
echo 'root:x:0:' > "$DIR/rootfs/etc/group"
cat > "$DIR/config.json" <<'JSON'
{
  "ociVersion": "1.2.0",
  "process": {
    "terminal": false,
    "user": {"uid": 0, "gid": 0},
    "args": ["sh", "-c", "echo \"kernel:   $(uname -a)\"; echo \"hostname: $(hostname)\"; echo \"user:     $(id)\"; echo processes:; ps"],
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
  "root": {"path": "rootfs", "readonly": true},
  "hostname": "rruntime-demo",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]}
  ],
  "linux": {
    "resources": {"devices": [{"allow": false, "access": "rwm"}], "pids": {"limit": 64}, "memory": {"limit": 67108864}},
    "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
    "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
    "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
  }
}
JSON
ID="rruntime-demo-$$"
echo "== rruntime run -b $DIR $ID"
"$RT" run -b "$DIR" "$ID"
echo "== container exited with status $?"
