#!/bin/bash
# Podman 4.3 (+ conmon) driving RUNTIME (`podman --runtime RUNTIME`), rootful, cgroupfs, with
# every piece of state in a temp dir (--root, --runroot, --tmpdir, network config, events
# file), the locally built busybox image loaded with `podman load`, and the flows from issue #5.
# Networking is podman's default bridge network (netavark) with `-p 127.0.0.1:PORT:80`.
# Usage: podman.sh RUNTIME_BINARY      (e.g. target/release/rruntime or /usr/sbin/runc)
# Env: VERBOSE=1, ONLY=REGEX, KEEP_LOGS=DIR (see lib.sh); CGROUP_DRIVER=systemd for podman's
# systemd cgroup manager (the runtime gets --systemd-cgroup).
# Exit status: 0 all passed, 1 a scenario failed, 2 usage, 77 podman cannot run here.
. "$(dirname "$0")/lib.sh"
lib_init podman "${1:-}"

for b in podman conmon; do
    if ! command -v $b >/dev/null; then
        skip podman "$b not installed (apt-get install podman)"
        exit 77
    fi
done

CG_PARENT_NAME=libpod_parent
record_cgroup_parents
mkdir -p "$T/root" "$T/runroot" "$T/tmp" "$T/net" "$T/share" "$T/volumes" "$T/bin"

# Podman reads these instead of the host's /etc/containers files.
cat >"$T/containers.conf" <<EOF
[containers]
log_driver = "k8s-file"
# Podman raises RLIMIT_NOFILE/NPROC above the host's hard limits for root; without
# CAP_SYS_RESOURCE (sandboxed hosts) no runtime may do that, so stay within them (podman
# itself runs conmon with a lower hard NPROC than the shell's).
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=4096:4096"]
[engine]
cgroup_manager = "${CGROUP_DRIVER:-cgroupfs}"
events_logger = "file"
events_logfile_path = "$T/events.log"
runtime_supports_json = ["crun", "runc", "$RT_NAME"]
volume_path = "$T/volumes"
[network]
network_backend = "netavark"
network_config_dir = "$T/net"
EOF
cat >"$T/storage.conf" <<EOF
[storage]
driver = "${STORAGE_DRIVER:-overlay}"
graphroot = "$T/root"
runroot = "$T/runroot"
EOF
cat >"$T/registries.conf" <<EOF
unqualified-search-registries = []
short-name-mode = "disabled"
EOF
export CONTAINERS_CONF=$T/containers.conf
export CONTAINERS_STORAGE_CONF=$T/storage.conf
export CONTAINERS_REGISTRIES_CONF=$T/registries.conf
unset NOTIFY_SOCKET

P=(podman --root "$T/root" --runroot "$T/runroot" --tmpdir "$T/tmp" --runtime "$RT"
    --cgroup-manager "${CGROUP_DRIVER:-cgroupfs}" --events-backend file --network-config-dir "$T/net")
p() { "${P[@]}" "$@"; }

if ! p info >"$T/logs/info.log" 2>&1; then
    skip podman "podman info failed: $(tail -n 2 "$T/logs/info.log" | tr '\n' ' ')"
    exit 77
fi
BRIDGE_EXISTED=0
ip link show podman0 >/dev/null 2>&1 && BRIDGE_EXISTED=1
# netavark leaves its iptables chains and ip_forward=1 behind: undone at exit if they were not
# there before.
NETAVARK_EXISTED=0
if command -v iptables >/dev/null && { iptables -S; iptables -t nat -S; } 2>/dev/null | grep -q NETAVARK; then
    NETAVARK_EXISTED=1
fi
IP_FORWARD=$(cat /proc/sys/net/ipv4/ip_forward 2>/dev/null)

remove_netavark_rules() {
    local tbl rule ch
    for tbl in nat filter; do
        iptables -t "$tbl" -S | grep -E '^-A (PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) .*-j NETAVARK' |
            sed 's/^-A/-D/' | while read -r rule; do eval iptables -t "$tbl" "$rule"; done
        for ch in $(iptables -t "$tbl" -S | awk '$1 == "-N" && $2 ~ /^NETAVARK/ { print $2 }'); do
            iptables -t "$tbl" -F "$ch"
        done
        for ch in $(iptables -t "$tbl" -S | awk '$1 == "-N" && $2 ~ /^NETAVARK/ { print $2 }'); do
            iptables -t "$tbl" -X "$ch"
        done
    done
}

# At exit: remove every container (conmon exits with it), then the bridge if we made it.
cleanup_podman() {
    p rm -af -t 0
    p rmi -af
    if [ "$BRIDGE_EXISTED" = 0 ] && ip link show podman0 >/dev/null 2>&1; then
        ip link del podman0
    fi
    if [ "$NETAVARK_EXISTED" = 0 ] && command -v iptables >/dev/null; then
        remove_netavark_rules
    fi
    [ -z "$IP_FORWARD" ] || echo "$IP_FORWARD" >/proc/sys/net/ipv4/ip_forward
    # conmon processes of ours that are left (their command line names our runroot).
    local pid
    for pid in $(pids_with_cmdline "$T/runroot"); do
        stop_pid "$pid"
    done
}
on_exit cleanup_podman

IMG=
state_of() { p inspect -f '{{.State.Status}}' "$1" 2>/dev/null; }
pid_of() { p inspect -f '{{.State.Pid}}' "$1" 2>/dev/null; }
state_is() {
    local s n=0
    while :; do
        s=$(state_of "$1")
        [ "$s" = "$2" ] && return 0
        n=$((n + 1))
        if [ $n -ge 60 ]; then
            WHY="container $1 is '${s:-absent}', expected $2"
            return 1
        fi
        sleep 0.25
    done
}

t_load() {
    build_image || { WHY="image build failed: $(tail -n 2 "$T/logs/image.log")"; return 1; }
    ok "${P[@]}" load -i "$T/image/busybox-docker.tar" || return 1
    IMG=$(printf '%s\n' "$OUT" | sed -n 's/^Loaded image: *//p' | tail -n 1)
    [ -n "$IMG" ] || { WHY="no 'Loaded image' in: $(oneline "$OUT")"; return 1; }
    ok "${P[@]}" images --format '{{.Repository}}:{{.Tag}}' || return 1
    has "rrbusybox"
}

t_run_rm() {
    ok "${P[@]}" run --rm --name rm1 "$IMG" sh -c 'echo hello-from-run; id -u' || return 1
    has hello-from-run || return 1
    rc_is 3 "${P[@]}" run --rm "$IMG" sh -c 'exit 3' || return 1
    ok "${P[@]}" ps -a --format '{{.Names}}' || return 1
    hasnt rm1
}

t_run_detached() {
    ok "${P[@]}" run -d --name web1 "$IMG" sh -c 'echo started-web1; echo to-stderr >&2; exec sleep 1000' || return 1
    state_is web1 running || return 1
    local pid
    pid=$(pid_of web1)
    [ -n "$pid" ] && [ "$pid" != 0 ] && [ -d "/proc/$pid" ] || { WHY="no live pid for web1 ($pid)"; return 1; }
}

t_exec() {
    ok "${P[@]}" exec web1 sh -c 'echo exec-ok $((40+2)); cat /proc/1/cmdline | tr "\0" " "' || return 1
    has "exec-ok 42" && has "sleep 1000" || return 1
    ok "${P[@]}" exec -e XV=from-exec -w /tmp -u 1000:1000 web1 sh -c 'echo "$XV $(pwd) $(id -u):$(id -g)"' || return 1
    has "from-exec /tmp 1000:1000" || return 1
    rc_is 6 "${P[@]}" exec web1 sh -c 'exit 6' || return 1
    # podman's own code for a missing command
    rc_is 127 "${P[@]}" exec web1 /no/such/binary
}

t_exec_tty() {
    run_tty $'echo typed-$((6*7))\ntty\nexit 4' "${P[@]}" exec -it web1 sh
    has "typed-42" && has "/dev/pts/" || return 1
    eq "exit status of the interactive exec" 4 "$RC"
}

t_logs() {
    ok "${P[@]}" logs web1 || return 1
    has started-web1 && has to-stderr
}

t_ps() {
    ok "${P[@]}" ps --format '{{.Names}} {{.Status}}' || return 1
    has "web1 Up"
}

t_stop() {
    # sleep as pid 1 ignores SIGTERM: podman escalates to SIGKILL after the timeout.
    ok "${P[@]}" stop -t 2 web1 || return 1
    state_is web1 exited || return 1
    ok "${P[@]}" ps -a --format '{{.Names}} {{.Status}}' || return 1
    has "web1 Exited"
}

t_rm() {
    ok "${P[@]}" rm web1 || return 1
    ok "${P[@]}" ps -a --format '{{.Names}}' || return 1
    hasnt web1 || return 1
    # Start/stop/rm again by name, with rm -f of a running container.
    ok "${P[@]}" run -d --name web2 "$IMG" sleep 1000 || return 1
    state_is web2 running || return 1
    ok "${P[@]}" rm -f web2 || return 1
    ok "${P[@]}" ps -a --format '{{.Names}}' || return 1
    hasnt web2
}

t_env() {
    ok "${P[@]}" run --rm -e FOO=bar-baz -e EMPTY= "$IMG" sh -c 'echo "FOO=$FOO EMPTY=[$EMPTY]"' || return 1
    has "FOO=bar-baz EMPTY=[]"
}

t_volume() {
    echo from-host >"$T/share/in"
    rm -f "$T/share/out"
    ok "${P[@]}" run --rm -v "$T/share:/data" "$IMG" sh -c 'cat /data/in; echo from-container > /data/out' || return 1
    has from-host || return 1
    eq "file written through the volume" from-container "$(cat "$T/share/out" 2>/dev/null)" || return 1
    run "${P[@]}" run --rm -v "$T/share:/data:ro" "$IMG" sh -c 'echo x > /data/ro-test'
    [ "$RC" -ne 0 ] && [ ! -e "$T/share/ro-test" ] || { WHY="wrote through a :ro volume (rc $RC)"; return 1; }
    # A named volume survives the container.
    ok "${P[@]}" run --rm -v rrvol:/v "$IMG" sh -c 'echo kept > /v/f' || return 1
    ok "${P[@]}" run --rm -v rrvol:/v "$IMG" cat /v/f || return 1
    has kept
}

t_memory() {
    ok "${P[@]}" run -d --name mem1 --memory 64m "$IMG" sleep 1000 || return 1
    state_is mem1 running || return 1
    local r=0
    memory_limit_is "$(pid_of mem1)" 67108864 || r=1
    p rm -f -t 0 mem1 >/dev/null 2>&1
    return $r
}

t_pids_limit() {
    ok "${P[@]}" run -d --name pids1 --pids-limit 42 "$IMG" sleep 1000 || return 1
    state_is pids1 running || return 1
    local r=0
    cgroup_value_is "$(pid_of pids1)" pids pids.max 42 || r=1
    p rm -f -t 0 pids1 >/dev/null 2>&1
    return $r
}

t_port() {
    local port
    port=$(free_port)
    ok "${P[@]}" run -d --name httpd1 -p "127.0.0.1:$port:80" "$IMG" httpd -f -p 80 -h /www || return 1
    state_is httpd1 running || return 1
    until_ok 20 curl -fsS --max-time 5 "http://127.0.0.1:$port/" || return 1
    has "hello from rrbusybox" || return 1
    p rm -f -t 0 httpd1 >/dev/null 2>&1
    return 0
}

t_preserve_fds() {
    echo through-fd-3 >"$T/share/fd3"
    run "${P[@]}" run --rm --preserve-fds 1 "$IMG" sh -c 'cat <&3' 3<"$T/share/fd3"
    eq "exit status" 0 "$RC" || { WHY="$WHY: $(lastline "$OUT")"; return 1; }
    has through-fd-3
}

# sd_notify: with --sdnotify=container podman gives the container a socket at
# /run/notify/notify.sock and relays READY=1 (with conmon's MAINPID) to its own NOTIFY_SOCKET.
# The client is a static C helper built with gcc.
t_sdnotify() {
    if [ ! -x "$T/bin/sdnotify" ] &&
        ! gcc -static -O2 -o "$T/bin/sdnotify" "$LIB_DIR/sdnotify.c" >>"$SCEN_LOG" 2>&1; then
        SKIP_WHY="cannot build the sd_notify helper (gcc with a static libc needed)"
        return 1
    fi
    "$T/bin/sdnotify" listen "$T/notify.sock" 20 >"$T/notify.out" 2>&1 &
    local lpid=$!
    on_exit "kill $lpid"
    sleep 0.3
    NOTIFY_SOCKET=$T/notify.sock run "${P[@]}" run -d --name sdn1 --sdnotify=container -v "$T/bin:/xbin:ro" \
        "$IMG" sh -c 'echo "in container: $NOTIFY_SOCKET"; sleep 1; /xbin/sdnotify send READY=1; exec sleep 1000'
    eq "exit status of run -d --sdnotify=container" 0 "$RC" || { WHY="$WHY: $(lastline "$OUT")"; kill $lpid; return 1; }
    local n=0
    while ! grep -qx "READY=1" "$T/notify.out" && [ $n -lt 60 ]; do
        sleep 0.25
        n=$((n + 1))
    done
    kill $lpid 2>/dev/null
    cat "$T/notify.out" >>"$SCEN_LOG"
    p logs sdn1 >>"$SCEN_LOG" 2>&1
    p rm -f -t 0 sdn1 >/dev/null 2>&1
    grep -qx "READY=1" "$T/notify.out" || { WHY="no READY=1 reached the host socket: $(oneline "$(cat "$T/notify.out")")"; return 1; }
    grep -q "^MAINPID=" "$T/notify.out" || { WHY="no MAINPID reached the host socket: $(oneline "$(cat "$T/notify.out")")"; return 1; }
}

# Other everyday `podman run` options, each checked where the runtime applies it.
t_run_options() {
    ok "${P[@]}" run --rm --user 1000:1000 -w /tmp --hostname rr-host "$IMG" \
        sh -c 'echo "$(id -u):$(id -g) $(pwd) $(hostname)"' || return 1
    has "1000:1000 /tmp rr-host" || return 1
    ok "${P[@]}" run --rm --read-only --tmpfs /scratch "$IMG" \
        sh -c 'touch /x 2>/dev/null && echo root-writable; touch /scratch/y && echo tmpfs-ok' || return 1
    hasnt root-writable && has tmpfs-ok || return 1
    ok "${P[@]}" run --rm --cap-drop ALL --cap-add CHOWN "$IMG" grep CapEff /proc/self/status || return 1
    has "0000000000000001" || return 1
    ok "${P[@]}" run --rm --ulimit nofile=100:200 --ulimit nproc=4096:4096 "$IMG" sh -c 'echo $(ulimit -Sn) $(ulimit -Hn)' || return 1
    has "100 200" || return 1
    ok "${P[@]}" run --rm --init "$IMG" sh -c 'cat /proc/1/cmdline | tr "\0" " "' || return 1
    has "podman-init" || return 1
    ok "${P[@]}" run -d --name cpu1 --cpus 0.5 --cpu-shares 512 "$IMG" sleep 1000 || return 1
    state_is cpu1 running || return 1
    local r=0 pid
    pid=$(pid_of cpu1)
    cpu_limits_are "$pid" 50000 100000 512 || r=1
    p rm -f -t 0 cpu1 >/dev/null 2>&1
    [ $r = 0 ] || return 1
    ok "${P[@]}" run -d --name sig1 "$IMG" sh -c 'trap "exit 42" USR1; while :; do sleep 0.1; done' || return 1
    state_is sig1 running || return 1
    ok "${P[@]}" kill -s USR1 sig1 || return 1
    ok "${P[@]}" wait sig1 || return 1
    eq "podman wait after USR1" 42 "$OUT" || return 1
    p rm -f -t 0 sig1 >/dev/null 2>&1
    ok "${P[@]}" run -d --name ex1 "$IMG" sleep 1000 || return 1
    state_is ex1 running || return 1
    ok "${P[@]}" exec -d ex1 sh -c 'echo detached > /tmp/mark' || return 1
    until_ok 10 "${P[@]}" exec ex1 cat /tmp/mark || return 1
    has detached || return 1
    p rm -f -t 0 ex1 >/dev/null 2>&1
    return 0
}

# A command missing from the image: podman recognises the runtime's error text and exits 127
# (126 for a file that is not executable), like `sh` would.
t_missing_command() {
    rc_is 127 "${P[@]}" run --rm "$IMG" no-such-command || return 1
    has "no-such-command" || return 1
    rc_is 127 "${P[@]}" run --rm "$IMG" /no/such/path || return 1
    rc_is 126 "${P[@]}" run --rm "$IMG" /etc/passwd
}

t_tty_run() {
    run_tty $'echo hello-$((6*7))\nexit 3' "${P[@]}" run -it --rm "$IMG" sh
    has "hello-42" || return 1
    eq "exit status of the interactive container" 3 "$RC"
}

t_no_leaks() {
    local left
    left=$(p ps -aq)
    [ -z "$left" ] || { WHY="containers left: $(oneline "$left")"; return 1; }
    left=$(find /sys/fs/cgroup -mindepth 2 -maxdepth 3 -type d \( -path '*/libpod_parent/libpod-*' -o -path '*/machine.slice/libpod-*' \) 2>/dev/null | head -5)
    [ -z "$left" ] || { WHY="container cgroups left: $(oneline "$left")"; return 1; }
}

scenario load t_load || { finish; exit 1; }
scenario run-rm t_run_rm
scenario run-detached-name t_run_detached
scenario exec t_exec
scenario exec-tty t_exec_tty
scenario logs t_logs
scenario ps t_ps
scenario stop t_stop
scenario rm t_rm
scenario env t_env
scenario volume t_volume
scenario memory t_memory
scenario pids-limit t_pids_limit
scenario port t_port
scenario preserve-fds t_preserve_fds
scenario tty-run t_tty_run
scenario run-options t_run_options
scenario missing-command t_missing_command
scenario sdnotify t_sdnotify
scenario no-leaks t_no_leaks
finish
