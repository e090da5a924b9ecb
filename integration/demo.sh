#!/bin/sh
# Builds a busybox bundle (from the busybox-static package) and runs a container from it with
# the given rruntime binary: prints its kernel, hostname, user and processes, then exits.
set -eu
RT=${1:-target/release/rruntime}
DIR=${2:-./demo-bundle}
case "$RT" in /*) ;; *) RT="$(pwd)/$RT" ;; esac
. "$(dirname "$0")/lib/bundle.sh"
bundle_check || exit 1
if [ "$(id -u)" != 0 ]; then
    echo "demo: run as root (containers need namespaces, mounts and cgroups)" >&2
    exit 1
fi
rm -rf "$DIR"
bundle_rootfs "$DIR"
BUNDLE_HOSTNAME=rruntime-demo \
BUNDLE_RESOURCES='{"devices": [{"allow": false, "access": "rwm"}], "pids": {"limit": 64}, "memory": {"limit": 67108864}}' \
BUNDLE_MOUNTS=demo \
bundle_config "$DIR" '["sh", "-c", "echo \"kernel:   $(uname -a)\"; echo \"hostname: $(hostname)\"; echo \"user:     $(id)\"; echo processes:; ps"]'
ID="rruntime-demo-$$"
echo "== rruntime run -b $DIR $ID"
"$RT" run -b "$DIR" "$ID"
echo "== container exited with status $?"
