#!/bin/bash
# containerd 1.6 + ctr + the io.containerd.runc.v2 shim driving RUNTIME (`--runc-binary`):
# a private containerd (own root/state/sockets under a temp dir), the locally built busybox
# image imported with `ctr images import`, and the flows from issue #5.
# Usage: containerd.sh RUNTIME_BINARY      (e.g. target/release/rruntime or /usr/sbin/runc)
# Env: VERBOSE=1 prints the log of a failed scenario, ONLY=REGEX runs matching scenarios,
#      KEEP_LOGS=DIR keeps the logs.
#      CGROUP_DRIVER=systemd: the runc shim's `SystemdCgroup = true` (ctr's --runc-systemd-cgroup;
#      the shim then calls the runtime with --systemd-cgroup) with the cgroupsPath
#      `system.slice:rrcallers:<id>` (ctr --cgroup; ctr has no default for it, and neither has
#      the shim: the CRI plugin is what passes `<pod slice>:cri-containerd:<id>`), so every
#      container is the transient unit rrcallers-<id>.scope in system.slice.
# Exit status: 0 all passed, 1 a scenario failed, 2 usage, 77 containerd cannot start here.
. "$(dirname "$0")/lib.sh"
lib_init containerd "${1:-}"

for b in containerd ctr containerd-shim-runc-v2; do
    if ! command -v $b >/dev/null; then
        skip containerd "$b not installed (apt-get install containerd)"
        exit 77
    fi
done

NS=rrcallers
SOCK=$T/containerd.sock
RROOT=$T/runtime-root
IMG=docker.io/library/rrbusybox:latest
CG_PARENT_NAME=$NS
mkdir -p "$RROOT" "$T/share"
record_cgroup_parents

cat >"$T/config.toml" <<EOF
version = 2
root = "$T/root"
state = "$T/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  level = "info"
[plugins."io.containerd.internal.v1.opt"]
  path = "$T/opt"
EOF

start_daemon containerd containerd --config "$T/config.toml"
CONTAINERD_PID=$DAEMON_PID
if ! wait_for 30 ctr --address "$SOCK" version; then
    skip containerd "containerd did not start: $(tail -n 3 "$T/logs/containerd.log" | tr '\n' ' ')"
    exit 77
fi

C=(ctr --address "$SOCK" -n "$NS")
c() { "${C[@]}" "$@"; }
RUNFLAGS=(--runtime io.containerd.runc.v2 --runc-binary "$RT" --runc-root "$RROOT")
SYSTEMD=0
[ "${CGROUP_DRIVER:-cgroupfs}" = systemd ] && SYSTEMD=1
# rf ID: the `ctr run` flags for container ID in RF (with the systemd driver: the shim option and
# a cgroupsPath naming ID).
rf() {
    RF=("${RUNFLAGS[@]}")
    [ $SYSTEMD = 1 ] && RF+=(--runc-systemd-cgroup --cgroup "system.slice:$NS:$1")
    return 0
}
# cgroups_left ID-GLOB: container cgroups of ours still there (cgroupfs: /<ns>/<id>; systemd: the
# scope's directory and the unit itself).
cgroups_left() {
    find /sys/fs/cgroup -mindepth 1 -maxdepth 4 -type d \( -path "*/$NS/$1" -o -path "*/system.slice/$NS-$1.scope" \) 2>/dev/null | head -5
    if [ $SYSTEMD = 1 ]; then
        systemctl list-units --all --plain --no-legend "$NS-$1.scope" 2>/dev/null | awk '{ print "unit " $1 }'
    fi
}

# At exit: remove every task and container (the shims exit with them), then any shim of ours
# that is left (their command line names our socket).
cleanup_containers() {
    local id pid
    for id in $(c task ls -q 2>/dev/null); do
        c task kill -s SIGKILL "$id"
        c task delete -f "$id"
    done
    for id in $(c container ls -q 2>/dev/null); do
        c container delete "$id"
    done
    stop_pid "$CONTAINERD_PID"
    for pid in $(pids_with_cmdline "-address $SOCK"); do
        stop_pid "$pid"
    done
    # Scopes a failed runtime delete left behind (systemd driver).
    if [ $SYSTEMD = 1 ]; then
        systemctl stop "$NS-*.scope"
        systemctl reset-failed "$NS-*.scope"
    fi
}
on_exit cleanup_containers

# Task pid and status from `ctr task ls`.
task_pid() { c task ls 2>/dev/null | awk -v id="$1" '$1 == id { print $2 }'; }
task_status() { c task ls 2>/dev/null | awk -v id="$1" '$1 == id { print $3 }'; }
status_is() {
    local s
    s=$(task_status "$1")
    [ "$s" = "$2" ] && return 0
    WHY="task $1 is '${s:-absent}', expected $2"
    return 1
}
wait_status() {
    local n=0
    while ! status_is "$1" "$2"; do
        n=$((n + 1))
        [ $n -ge 80 ] && return 1
        sleep 0.25
    done
}
# Removes a container and its task.
remove() {
    c task kill -s SIGKILL "$1" >/dev/null 2>&1
    c task delete -f "$1" >/dev/null 2>&1
    c container delete "$1" >/dev/null 2>&1
}

t_import() {
    build_image || { WHY="image build failed: $(tail -n 2 "$T/logs/image.log")"; return 1; }
    ok "${C[@]}" images import "$T/image/busybox-oci.tar" || return 1
    ok "${C[@]}" images ls -q || return 1
    has "$IMG"
}

t_detached() {
    rf det
    ok "${C[@]}" run -d "${RF[@]}" "$IMG" det sleep 1000 || return 1
    wait_status det RUNNING || return 1
    local pid
    pid=$(task_pid det)
    [ -n "$pid" ] && [ -d "/proc/$pid" ] || { WHY="no live pid for task det ($pid)"; return 1; }
    # The runtime knows the container under its own root.
    ok "$RT" --root "$RROOT/$NS" state det || return 1
    has '"running"' || return 1
    [ $SYSTEMD = 1 ] || return 0
    # The systemd driver: the init is in the transient scope the runtime asked systemd for,
    # delegated, in system.slice.
    local cg
    cg=$(awk -F: '$1 == "0" { print $3 }' "/proc/$pid/cgroup")
    eq "cgroup of the task" "/system.slice/$NS-det.scope" "$cg" || return 1
    ok systemctl show "$NS-det.scope" -p ActiveState -p Delegate -p Slice || return 1
    has "ActiveState=active" && has "Delegate=yes" && has "Slice=system.slice"
}

t_exec() {
    ok "${C[@]}" task exec --exec-id e1 det sh -c 'echo exec-out $((40+2)); echo exec-err >&2' || return 1
    has "exec-out 42" && has "exec-err" || return 1
    rc_is 5 "${C[@]}" task exec --exec-id e2 det sh -c 'exit 5' || return 1
    # The exec joined the container's pid namespace: the container's sleep is pid 1 there.
    ok "${C[@]}" task exec --exec-id e3 det sh -c 'cat /proc/1/cmdline | tr "\0" " "' || return 1
    has "sleep 1000"
}

t_exec_tty() {
    run_tty "" "${C[@]}" task exec -t --exec-id t1 det sh -c 'tty; echo tty-exec-ok'
    eq "exit status" 0 "$RC" || { WHY="$WHY: $(lastline "$OUT")"; return 1; }
    has "/dev/pts/" && has "tty-exec-ok" || return 1
    # An interactive shell: typed input, its output, its exit status.
    run_tty $'echo typed-$((6*7))\nexit 4' "${C[@]}" task exec -t --exec-id t2 det sh
    has "typed-42" || return 1
    eq "exit status of the interactive exec" 4 "$RC"
}

t_exec_detached() {
    ok "${C[@]}" task exec -d --exec-id bg det sleep 777 || return 1
    until_ok 10 sh -c "ps -eo args | grep -qx 'sleep 777'"
}

t_ps() {
    ok "${C[@]}" task ps det || return 1
    local pid
    pid=$(task_pid det)
    has "$pid"
}

t_pause_resume() {
    ok "${C[@]}" task pause det || return 1
    wait_status det PAUSED || return 1
    cgroup_frozen "$(task_pid det)" || return 1
    ok "${C[@]}" task resume det || return 1
    wait_status det RUNNING || return 1
    ok "${C[@]}" task exec --exec-id after-resume det echo resumed || return 1
    has resumed
}

t_kill() {
    ok "${C[@]}" task kill -s SIGKILL det || return 1
    wait_status det STOPPED || return 1
    ok "$RT" --root "$RROOT/$NS" state det || return 1
    has '"stopped"'
}

t_delete() {
    ok "${C[@]}" task delete det || return 1
    ok "${C[@]}" container delete det || return 1
    [ ! -e "$RROOT/$NS/det" ] || { WHY="runtime state $RROOT/$NS/det left after delete"; return 1; }
    local left
    left=$(cgroups_left det)
    [ -z "$left" ] || { WHY="cgroups left after delete: $(oneline "$left")"; return 1; }
    ok "${C[@]}" task ls -q || return 1
    hasnt det
}

t_tty_container() {
    rf tty1
    run_tty "" "${C[@]}" run -t --rm "${RF[@]}" "$IMG" tty1 sh -c 'tty; echo tty-run-ok'
    eq "exit status" 0 "$RC" || { WHY="$WHY: $(lastline "$OUT")"; return 1; }
    has "/dev/pts/0" && has "tty-run-ok" || return 1
    rf tty2
    run_tty $'echo hello-$((6*7))\nexit 3' "${C[@]}" run -t --rm "${RF[@]}" "$IMG" tty2 sh
    has "hello-42" || return 1
    eq "exit status of the interactive container" 3 "$RC"
}

t_memory_limit() {
    rf mem
    ok "${C[@]}" run -d "${RF[@]}" --memory-limit 67108864 "$IMG" mem sleep 1000 || return 1
    wait_status mem RUNNING || return 1
    local r=0
    memory_limit_is "$(task_pid mem)" 67108864 || r=1
    remove mem
    return $r
}

t_bind_mount() {
    echo from-host >"$T/share/in"
    rm -f "$T/share/out"
    rf bind1
    ok "${C[@]}" run --rm "${RF[@]}" --mount "type=bind,src=$T/share,dst=/data,options=rbind:rw" \
        "$IMG" bind1 sh -c 'cat /data/in; echo from-container > /data/out' || return 1
    has from-host || return 1
    eq "file written through the bind mount" from-container "$(cat "$T/share/out" 2>/dev/null)" || return 1
    # Read-only bind: writes fail inside.
    rf bind2
    rc_is 1 "${C[@]}" run --rm "${RF[@]}" --mount "type=bind,src=$T/share,dst=/data,options=rbind:ro" \
        "$IMG" bind2 sh -c 'echo x > /data/ro-test' || return 1
    [ ! -e "$T/share/ro-test" ] || { WHY="wrote through a read-only bind mount"; return 1; }
}

t_env() {
    rf env1
    ok "${C[@]}" run --rm "${RF[@]}" --env FOO=bar-baz --env EMPTY= "$IMG" env1 sh -c 'echo "FOO=$FOO EMPTY=[$EMPTY]"' || return 1
    has "FOO=bar-baz EMPTY=[]"
}

t_stdin() {
    rf stdin1
    run_in $'line one\nline two\n' "${C[@]}" run --rm "${RF[@]}" "$IMG" stdin1 sh -c 'head -n 2 | tr a-z A-Z'
    eq "exit status" 0 "$RC" || { WHY="$WHY: $(lastline "$OUT")"; return 1; }
    has "LINE TWO"
}

t_exit_status() {
    rf exit1
    rc_is 3 "${C[@]}" run --rm "${RF[@]}" "$IMG" exit1 sh -c 'echo bye; exit 3' || return 1
    has bye || return 1
    # Killed by a signal: 128+N, reported by `task delete`.
    rf exit2
    ok "${C[@]}" run -d "${RF[@]}" "$IMG" exit2 sleep 1000 || return 1
    wait_status exit2 RUNNING || return 1
    ok "${C[@]}" task kill -s SIGKILL exit2 || return 1
    wait_status exit2 STOPPED || return 1
    ok "${C[@]}" task delete exit2 || return 1
    has "exit code 137" || return 1
    remove exit2
    # Exit status of a detached task, reported by `task delete`, and again by `task start`
    # of a new task of the same container.
    rf exit3
    ok "${C[@]}" run -d "${RF[@]}" "$IMG" exit3 sh -c 'exit 7' || return 1
    wait_status exit3 STOPPED || return 1
    ok "${C[@]}" task delete exit3 || return 1
    has "exit code 7" || return 1
    rc_is 7 "${C[@]}" task start exit3 || return 1
    remove exit3
}

# exec as another user in another directory; `kill --all` reaching every process.
t_exec_user_kill_all() {
    rf ka1
    ok "${C[@]}" run -d "${RF[@]}" "$IMG" ka1 sh -c 'sleep 1001 & sleep 1002 & wait' || return 1
    wait_status ka1 RUNNING || return 1
    ok "${C[@]}" task exec --exec-id u1 --user 1000 --cwd /tmp ka1 sh -c 'echo "$(id -u) $(pwd)"' || return 1
    has "1000 /tmp" || return 1
    ok "${C[@]}" task exec -d --exec-id bg1 ka1 sleep 1003 || return 1
    until_ok 10 sh -c "ps -eo args | grep -qx 'sleep 1003'" || return 1
    ok "${C[@]}" task kill -a -s SIGKILL ka1 || return 1
    wait_status ka1 STOPPED || return 1
    local left
    left=$(ps -eo args | grep -xE 'sleep 100[123]')
    [ -z "$left" ] || { WHY="processes left after kill --all: $(oneline "$left")"; return 1; }
    remove ka1
    return 0
}

# A command missing from the image: ctr fails, naming it (the runtime's error via the shim).
t_missing_command() {
    rf miss1
    run "${C[@]}" run --rm "${RF[@]}" "$IMG" miss1 no-such-command
    [ "$RC" -ne 0 ] || { WHY="ctr run of a missing command succeeded"; return 1; }
    has 'exec: "no-such-command": executable file not found in $PATH' || return 1
    remove miss1
    return 0
}

t_no_leaks() {
    local left
    left=$(ls -A "$RROOT/$NS" 2>/dev/null)
    [ -z "$left" ] || { WHY="runtime state left in $RROOT/$NS: $(oneline "$left")"; return 1; }
    left=$(cgroups_left '*')
    [ -z "$left" ] || { WHY="container cgroups left: $(oneline "$left")"; return 1; }
}

scenario import t_import || { finish; exit 1; }
scenario detached t_detached
scenario exec t_exec
scenario exec-tty t_exec_tty
scenario exec-detached t_exec_detached
scenario ps t_ps
scenario pause-resume t_pause_resume
scenario kill t_kill
scenario delete t_delete
remove det
scenario tty-container t_tty_container
scenario memory-limit t_memory_limit
scenario bind-mount t_bind_mount
scenario env t_env
scenario stdin t_stdin
scenario exit-status t_exit_status
scenario exec-user-kill-all t_exec_user_kill_all
scenario missing-command t_missing_command
scenario no-leaks t_no_leaks
finish
