#!/bin/bash
# Docker (Debian's docker.io: dockerd 20.10, which starts its own containerd) driving RUNTIME
# registered with `--add-runtime rruntime=RUNTIME`, with its own data root, exec root, socket
# and pid file under a temp dir, cgroupfs driver, `--iptables=false` (published ports go
# through docker-proxy, no host firewall changes), the locally built busybox image loaded with
# `docker load`, and the flows from issue #5. `--ip-forward=false` too: nothing on the host
# changes but the docker0 bridge, removed at exit.
# Usage: docker.sh RUNTIME_BINARY      (e.g. target/release/rruntime or /usr/sbin/runc)
# Env: VERBOSE=1, ONLY=REGEX, KEEP_LOGS=DIR (see lib.sh); DOCKER=path of the docker CLI;
# CGROUP_DRIVER=systemd for dockerd's systemd cgroup driver (the runtime gets --systemd-cgroup).
# Exit status: 0 all passed, 1 a scenario failed, 2 usage, 77 dockerd cannot start here.
. "$(dirname "$0")/lib.sh"
lib_init docker "${1:-}"

DOCKERD=$(command -v dockerd || true)
DOCKER=${DOCKER:-$(command -v docker || true)}
if [ -z "$DOCKERD" ] || [ -z "$DOCKER" ]; then
    skip docker "dockerd or docker not installed (apt-get install docker.io)"
    exit 77
fi

CG_PARENT_NAME=docker
record_cgroup_parents
mkdir -p "$T/data" "$T/exec" "$T/share" "$T/config"
SOCK=$T/docker.sock
export DOCKER_HOST=unix://$SOCK
export DOCKER_CONFIG=$T/config
BRIDGE_EXISTED=0
ip link show docker0 >/dev/null 2>&1 && BRIDGE_EXISTED=1

echo '{}' >"$T/daemon.json"
start_daemon dockerd "$DOCKERD" --data-root "$T/data" --exec-root "$T/exec" -H "unix://$SOCK" \
    --pidfile "$T/docker.pid" --add-runtime "rruntime=$RT" --exec-opt native.cgroupdriver=${CGROUP_DRIVER:-cgroupfs} \
    --iptables=false --ip-masq=false --ip-forward=false --storage-driver "${STORAGE_DRIVER:-overlay2}" \
    --log-level info --config-file "$T/daemon.json"
DOCKERD_PID=$DAEMON_PID
if ! wait_for 60 "$DOCKER" version; then
    skip docker "dockerd did not start: $(grep -i -m2 -E 'level=(error|fatal)' "$T/logs/dockerd.log" | tr '\n' ' ')"
    exit 77
fi

D=("$DOCKER")
R=(--runtime rruntime)

cleanup_docker() {
    local ids
    ids=$("$DOCKER" ps -aq 2>/dev/null)
    [ -z "$ids" ] || "$DOCKER" rm -f $ids
    stop_pid "$DOCKERD_PID"
    # Shims of dockerd's containerd left behind (their command line names our exec root).
    local pid
    for pid in $(pids_with_cmdline "$T/exec"); do
        stop_pid "$pid"
    done
    if [ "$BRIDGE_EXISTED" = 0 ] && ip link show docker0 >/dev/null 2>&1; then
        ip link del docker0
    fi
}
on_exit cleanup_docker

IMG=rrbusybox:latest
dstate() { "$DOCKER" inspect -f '{{.State.Status}}' "$1" 2>/dev/null; }
dpid() { "$DOCKER" inspect -f '{{.State.Pid}}' "$1" 2>/dev/null; }
state_is() {
    local s n=0
    while :; do
        s=$(dstate "$1")
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
    ok "${D[@]}" load -i "$T/image/busybox-docker.tar" || return 1
    has "rrbusybox:latest"
}

t_run_detached() {
    ok "${D[@]}" run -d "${R[@]}" --name d1 "$IMG" sh -c 'echo started-d1; echo to-stderr >&2; exec sleep 1000' || return 1
    state_is d1 running || return 1
    ok "${D[@]}" inspect -f '{{.HostConfig.Runtime}}' d1 || return 1
    eq "runtime of d1" rruntime "$OUT" || return 1
    local pid
    pid=$(dpid d1)
    [ -n "$pid" ] && [ "$pid" != 0 ] && [ -d "/proc/$pid" ] || { WHY="no live pid for d1 ($pid)"; return 1; }
}

t_logs() {
    ok "${D[@]}" logs d1 || return 1
    has started-d1 && has to-stderr
}

t_ps() {
    ok "${D[@]}" ps --format '{{.Names}} {{.Status}}' || return 1
    has "d1 Up"
}

t_exec() {
    ok "${D[@]}" exec d1 sh -c 'echo exec-ok $((40+2)); cat /proc/1/cmdline | tr "\0" " "' || return 1
    has "exec-ok 42" && has "sleep 1000" || return 1
    ok "${D[@]}" exec -e XV=from-exec -w /tmp -u 1000:1000 d1 sh -c 'echo "$XV $(pwd) $(id -u):$(id -g)"' || return 1
    has "from-exec /tmp 1000:1000" || return 1
    rc_is 6 "${D[@]}" exec d1 sh -c 'exit 6' || return 1
    run "${D[@]}" exec d1 /no/such/binary
    [ "$RC" -ne 0 ] || { WHY="exec of a missing binary succeeded"; return 1; }
}

t_exec_it() {
    run_tty $'echo typed-$((6*7))\ntty\nexit 4' "${D[@]}" exec -it d1 sh
    has "typed-42" && has "/dev/pts/" || return 1
    eq "exit status of the interactive exec" 4 "$RC"
}

t_top() {
    ok "${D[@]}" top d1 || return 1
    has "sleep 1000"
}

t_pause_unpause() {
    ok "${D[@]}" pause d1 || return 1
    state_is d1 paused || return 1
    ok "${D[@]}" unpause d1 || return 1
    state_is d1 running || return 1
    ok "${D[@]}" exec d1 echo after-unpause || return 1
    has after-unpause
}

t_stop() {
    # sleep as pid 1 ignores SIGTERM: docker escalates to SIGKILL after the timeout.
    ok "${D[@]}" stop -t 2 d1 || return 1
    state_is d1 exited || return 1
    ok "${D[@]}" inspect -f '{{.State.ExitCode}}' d1 || return 1
    eq "exit code after stop" 137 "$OUT" || return 1
    ok "${D[@]}" ps -a --format '{{.Names}} {{.Status}}' || return 1
    has "d1 Exited (137)"
}

t_restart() {
    ok "${D[@]}" start d1 || return 1
    state_is d1 running || return 1
    ok "${D[@]}" restart -t 1 d1 || return 1
    state_is d1 running
}

t_rm() {
    ok "${D[@]}" rm -f d1 || return 1
    ok "${D[@]}" ps -a --format '{{.Names}}' || return 1
    hasnt d1 || return 1
    ok "${D[@]}" create "${R[@]}" --name d2 "$IMG" true || return 1
    ok "${D[@]}" rm d2 || return 1
    ok "${D[@]}" ps -a --format '{{.Names}}' || return 1
    hasnt d2
}

t_run_rm() {
    ok "${D[@]}" run --rm "${R[@]}" --name rm1 "$IMG" sh -c 'echo hello-from-run; hostname' || return 1
    has hello-from-run || return 1
    rc_is 3 "${D[@]}" run --rm "${R[@]}" "$IMG" sh -c 'exit 3' || return 1
    # stdin without a terminal
    run_in $'one\ntwo\n' "${D[@]}" run --rm -i "${R[@]}" "$IMG" sh -c 'wc -l'
    eq "exit status of run -i" 0 "$RC" || return 1
    has 2 || return 1
    ok "${D[@]}" ps -a --format '{{.Names}}' || return 1
    hasnt rm1
}

t_run_it() {
    run_tty $'echo hello-$((6*7))\ntty\nexit 3' "${D[@]}" run -it --rm "${R[@]}" "$IMG" sh
    has "hello-42" && has "/dev/pts/0" || return 1
    eq "exit status of the interactive container" 3 "$RC"
}

t_env() {
    ok "${D[@]}" run --rm "${R[@]}" -e FOO=bar-baz -e EMPTY= "$IMG" sh -c 'echo "FOO=$FOO EMPTY=[$EMPTY]"' || return 1
    has "FOO=bar-baz EMPTY=[]"
}

t_volume() {
    echo from-host >"$T/share/in"
    rm -f "$T/share/out"
    ok "${D[@]}" run --rm "${R[@]}" -v "$T/share:/data" "$IMG" sh -c 'cat /data/in; echo from-container > /data/out' || return 1
    has from-host || return 1
    eq "file written through the volume" from-container "$(cat "$T/share/out" 2>/dev/null)" || return 1
    run "${D[@]}" run --rm "${R[@]}" -v "$T/share:/data:ro" "$IMG" sh -c 'echo x > /data/ro-test'
    [ "$RC" -ne 0 ] && [ ! -e "$T/share/ro-test" ] || { WHY="wrote through a :ro volume (rc $RC)"; return 1; }
    ok "${D[@]}" run --rm "${R[@]}" -v rrvol:/v "$IMG" sh -c 'echo kept > /v/f' || return 1
    ok "${D[@]}" run --rm "${R[@]}" -v rrvol:/v "$IMG" cat /v/f || return 1
    has kept
}

t_memory() {
    ok "${D[@]}" run -d "${R[@]}" --name mem1 --memory 64m "$IMG" sleep 1000 || return 1
    state_is mem1 running || return 1
    local r=0
    memory_limit_is "$(dpid mem1)" 67108864 || r=1
    "$DOCKER" rm -f mem1 >/dev/null 2>&1
    return $r
}

t_pids_limit() {
    ok "${D[@]}" run -d "${R[@]}" --name pids1 --pids-limit 42 "$IMG" sleep 1000 || return 1
    state_is pids1 running || return 1
    local r=0
    cgroup_value_is "$(dpid pids1)" pids pids.max 42 || r=1
    "$DOCKER" rm -f pids1 >/dev/null 2>&1
    return $r
}

t_port() {
    local port
    port=$(free_port)
    ok "${D[@]}" run -d "${R[@]}" --name httpd1 -p "127.0.0.1:$port:80" "$IMG" httpd -f -p 80 -h /www || return 1
    state_is httpd1 running || return 1
    until_ok 20 curl -fsS --max-time 5 "http://127.0.0.1:$port/" || return 1
    has "hello from rrbusybox" || return 1
    "$DOCKER" rm -f httpd1 >/dev/null 2>&1
    return 0
}

# Other everyday `docker run` options, each checked where the runtime applies it.
t_run_options() {
    ok "${D[@]}" run --rm "${R[@]}" --user 1000:1000 -w /tmp --hostname rr-host "$IMG" \
        sh -c 'echo "$(id -u):$(id -g) $(pwd) $(hostname)"' || return 1
    has "1000:1000 /tmp rr-host" || return 1
    # Read-only root with a tmpfs.
    ok "${D[@]}" run --rm "${R[@]}" --read-only --tmpfs /scratch "$IMG" \
        sh -c 'touch /x 2>/dev/null && echo root-writable; touch /scratch/y && echo tmpfs-ok' || return 1
    hasnt root-writable && has tmpfs-ok || return 1
    # Capabilities: dropped all, then one added (CapEff as hex).
    ok "${D[@]}" run --rm "${R[@]}" --cap-drop ALL --cap-add CHOWN "$IMG" grep CapEff /proc/self/status || return 1
    has "0000000000000001" || return 1
    ok "${D[@]}" run --rm "${R[@]}" --ulimit nofile=100:200 "$IMG" sh -c 'echo $(ulimit -Sn) $(ulimit -Hn)' || return 1
    has "100 200" || return 1
    # docker-init as pid 1 (--init), the command as its child.
    ok "${D[@]}" run --rm "${R[@]}" --init "$IMG" sh -c 'cat /proc/1/cmdline | tr "\0" " "; echo; echo $$' || return 1
    has "docker-init" || return 1
    # CPU limits: --cpus → CFS quota/period, --cpu-shares.
    ok "${D[@]}" run -d "${R[@]}" --name cpu1 --cpus 0.5 --cpu-shares 512 "$IMG" sleep 1000 || return 1
    state_is cpu1 running || return 1
    local r=0 pid
    pid=$(dpid cpu1)
    cpu_limits_are "$pid" 50000 100000 512 || r=1
    "$DOCKER" rm -f cpu1 >/dev/null 2>&1
    [ $r = 0 ] || return 1
    # docker kill with a signal the process handles, and docker wait's exit code.
    ok "${D[@]}" run -d "${R[@]}" --name sig1 "$IMG" sh -c 'trap "exit 42" USR1; while :; do sleep 0.1; done' || return 1
    state_is sig1 running || return 1
    ok "${D[@]}" kill -s USR1 sig1 || return 1
    ok "${D[@]}" wait sig1 || return 1
    eq "docker wait after USR1" 42 "$OUT" || return 1
    "$DOCKER" rm -f sig1 >/dev/null 2>&1
    # exec -d: the process runs detached inside the container.
    ok "${D[@]}" run -d "${R[@]}" --name ex1 "$IMG" sleep 1000 || return 1
    state_is ex1 running || return 1
    ok "${D[@]}" exec -d ex1 sh -c 'echo detached > /tmp/mark' || return 1
    until_ok 10 "${D[@]}" exec ex1 cat /tmp/mark || return 1
    has detached || return 1
    "$DOCKER" rm -f ex1 >/dev/null 2>&1
    return 0
}

# A command missing from the image: docker recognises the runtime's error text and exits 127
# (126 for a file that is not executable).
t_missing_command() {
    rc_is 127 "${D[@]}" run --rm "${R[@]}" "$IMG" no-such-command || return 1
    has "no-such-command" || return 1
    rc_is 127 "${D[@]}" run --rm "${R[@]}" "$IMG" /no/such/path || return 1
    rc_is 126 "${D[@]}" run --rm "${R[@]}" "$IMG" /etc/passwd
}

t_no_leaks() {
    local left
    left=$("$DOCKER" ps -aq)
    [ -z "$left" ] || { WHY="containers left: $(oneline "$left")"; return 1; }
    left=$(find /sys/fs/cgroup -mindepth 2 -maxdepth 3 -type d \( -path '*/docker/*' -o -path '*/system.slice/docker-*.scope' \) 2>/dev/null | head -5)
    [ -z "$left" ] || { WHY="container cgroups left: $(oneline "$left")"; return 1; }
}

scenario load t_load || { finish; exit 1; }
scenario run-d t_run_detached
scenario logs t_logs
scenario ps t_ps
scenario exec t_exec
scenario exec-it t_exec_it
scenario top t_top
scenario pause-unpause t_pause_unpause
scenario stop t_stop
scenario restart t_restart
scenario rm t_rm
scenario run-rm t_run_rm
scenario run-it t_run_it
scenario env t_env
scenario volume t_volume
scenario memory t_memory
scenario pids-limit t_pids_limit
scenario port t_port
scenario run-options t_run_options
scenario missing-command t_missing_command
scenario no-leaks t_no_leaks
finish
