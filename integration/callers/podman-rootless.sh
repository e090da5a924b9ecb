#!/bin/bash
# Rootless Podman 4.3 driving RUNTIME (`podman --runtime RUNTIME` run by an unprivileged user):
# Podman runs the runtime as uid 0 of its own user namespace, with XDG_RUNTIME_DIR set, and the
# runtime must see that it is not really root (state under $XDG_RUNTIME_DIR/<runtime>, cgroup
# errors per the rootless policy). The script makes its own user (with /etc/subuid and
# /etc/subgid ranges) and removes it at exit, with every piece of Podman state in a temp dir.
# Usage: podman-rootless.sh RUNTIME_BINARY    (e.g. target/release/rruntime or /usr/sbin/runc)
# Env: VERBOSE=1, ONLY=REGEX, KEEP_LOGS=DIR (see lib.sh); CGROUP_DRIVER=systemd for Podman's
# systemd cgroup manager, which for a rootless user is the user's own systemd (reached over the
# session bus; needs systemd as PID 1, logind and dbus-user-session: the user gets lingering
# for the run). Default: cgroupfs.
# Exit status: 0 all passed, 1 a scenario failed, 2 usage, 77 rootless podman cannot run here.
. "$(dirname "$0")/lib.sh"
lib_init podman-rootless "${1:-}"
DRIVER=${CGROUP_DRIVER:-cgroupfs}

for b in podman conmon newuidmap newgidmap useradd userdel runuser; do
    if ! command -v $b >/dev/null; then
        skip podman-rootless "$b not installed (apt-get install podman uidmap)"
        exit 77
    fi
done
if [ "$(cat /proc/sys/kernel/unprivileged_userns_clone 2>/dev/null || echo 1)" != 1 ] ||
    [ "$(cat /proc/sys/user/max_user_namespaces 2>/dev/null || echo 1)" = 0 ]; then
    skip podman-rootless "unprivileged user namespaces are disabled on this host"
    exit 77
fi

# The user: a fresh name per run, home and runtime dir under $T, a subordinate range past
# every range already delegated.
RU=rrpodman$$
mkdir -p "$T/home"
if ! useradd -M -d "$T/home" -s /bin/sh "$RU" >"$T/logs/useradd.log" 2>&1; then
    skip podman-rootless "cannot create a user: $(tail -n 1 "$T/logs/useradd.log")"
    exit 77
fi
on_exit "userdel -f $RU"
RUID=$(id -u "$RU")
RGID=$(id -g "$RU")
SUB=$(cat /etc/subuid /etc/subgid 2>/dev/null | awk -F: '{ e = $2 + $3; if (e > m) m = e } END { print (m < 100000 ? 100000 : m) }')
SUB=$(((SUB + 65535) / 65536 * 65536))
if ! usermod --add-subuids "$SUB-$((SUB + 65535))" --add-subgids "$SUB-$((SUB + 65535))" "$RU" >>"$T/logs/useradd.log" 2>&1; then
    skip podman-rootless "cannot give $RU subordinate id ranges: $(tail -n 1 "$T/logs/useradd.log")"
    exit 77
fi

if [ "$DRIVER" = systemd ]; then
    # The user's own systemd (user@UID.service) with its session bus, as after a login.
    if [ ! -d /run/systemd/system ] || ! command -v loginctl >/dev/null; then
        skip podman-rootless "systemd driver: systemd is not PID 1 here"
        exit 77
    fi
    if [ ! -e /usr/lib/systemd/user/dbus.socket ]; then
        skip podman-rootless "systemd driver: no user session bus (apt-get install dbus-user-session)"
        exit 77
    fi
    on_exit "loginctl terminate-user $RU; loginctl disable-linger $RU"
    loginctl enable-linger "$RU"
    XDG=/run/user/$RUID
    if ! wait_for 120 test -S "$XDG/bus"; then
        skip podman-rootless "systemd driver: the user manager of $RU started no session bus at $XDG/bus"
        exit 77
    fi
else
    XDG=$T/xdg
    mkdir -p "$XDG"
    chmod 700 "$XDG"
fi
mkdir -p "$T/root" "$T/runroot" "$T/tmp" "$T/share" "$T/volumes" "$T/bin" "$T/home/.config"
# The runtime binary where the user can run it, under its own name.
cp "$RT" "$T/bin/$RT_NAME"
chmod 755 "$T/bin/$RT_NAME"
RTU=$T/bin/$RT_NAME
chown -R "$RUID:$RGID" "$T/home" "$T/root" "$T/runroot" "$T/tmp" "$T/share" "$T/volumes" "$XDG"

# Networking: slirp4netns when there, otherwise no network (the runtime's part is the same).
NET=()
command -v slirp4netns >/dev/null || NET=(--network none)

cat >"$T/containers.conf" <<EOF
[containers]
log_driver = "k8s-file"
default_ulimits = []
[engine]
cgroup_manager = "$DRIVER"
events_logger = "file"
events_logfile_path = "$T/tmp/events.log"
runtime_supports_json = ["crun", "runc", "$RT_NAME"]
volume_path = "$T/volumes"
EOF
cat >"$T/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$T/root"
runroot = "$T/runroot"
EOF
cat >"$T/registries.conf" <<EOF
unqualified-search-registries = []
short-name-mode = "disabled"
EOF
chmod 644 "$T"/*.conf

# podman as the user, with a clean environment (what a login would give it).
U=(runuser -u "$RU" -- env -i "HOME=$T/home" "USER=$RU" "LOGNAME=$RU"
    "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin" "XDG_RUNTIME_DIR=$XDG"
    "CONTAINERS_CONF=$T/containers.conf" "CONTAINERS_STORAGE_CONF=$T/storage.conf"
    "CONTAINERS_REGISTRIES_CONF=$T/registries.conf" "TMPDIR=$T/tmp")
[ "$DRIVER" = systemd ] && U+=("DBUS_SESSION_BUS_ADDRESS=unix:path=$XDG/bus")
P=("${U[@]}" podman --root "$T/root" --runroot "$T/runroot" --tmpdir "$T/tmp" --runtime "$RTU"
    --cgroup-manager "$DRIVER" --events-backend file)
p() { "${P[@]}" "$@"; }

# The caller's cwd may be closed to the user (e.g. under /root).
cd "$T/home" || exit 2
if ! p info >"$T/logs/info.log" 2>&1; then
    skip podman-rootless "podman info as $RU failed: $(tail -n 2 "$T/logs/info.log" | tr '\n' ' ')"
    exit 77
fi

cleanup_podman() {
    p rm -f -a -t 0 >/dev/null 2>&1
    # The user's processes: Podman's pause process (holds the user namespace) and any conmon.
    local pid
    for pid in $(pgrep -u "$RUID" 2>/dev/null); do
        stop_pid "$pid"
    done
    unmount_under "$T"
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
    cp "$T/image/busybox-docker.tar" "$T/tmp/img.tar" && chmod 644 "$T/tmp/img.tar"
    ok "${P[@]}" load -i "$T/tmp/img.tar" || return 1
    IMG=$(printf '%s\n' "$OUT" | sed -n 's/^Loaded image: *//p' | tail -n 1)
    [ -n "$IMG" ] || { WHY="no 'Loaded image' in: $(oneline "$OUT")"; return 1; }
}

t_run_rm() {
    ok "${P[@]}" run --rm "${NET[@]}" --name rm1 "$IMG" sh -c 'echo hello-from-run; id -u; cat /proc/self/uid_map' || return 1
    has hello-from-run || return 1
    # root in the container is the user outside.
    printf '%s\n' "$OUT" | grep -qE "^ *0 +$RUID +1\$" || { WHY="container root is not $RU ($RUID): $(oneline "$OUT")"; return 1; }
    rc_is 3 "${P[@]}" run --rm "${NET[@]}" "$IMG" sh -c 'exit 3' || return 1
    ok "${P[@]}" ps -a --format '{{.Names}}' || return 1
    hasnt rm1
}

t_run_detached() {
    ok "${P[@]}" run -d "${NET[@]}" --name web1 "$IMG" sh -c 'echo started-web1; exec sleep 1000' || return 1
    state_is web1 running || return 1
    local pid
    pid=$(pid_of web1)
    [ -n "$pid" ] && [ "$pid" != 0 ] && [ -d "/proc/$pid" ] || { WHY="no live pid for web1 ($pid)"; return 1; }
    [ "$(stat -c %u "/proc/$pid")" = "$RUID" ] || { WHY="web1's init runs as uid $(stat -c %u "/proc/$pid"), not $RU"; return 1; }
    # The runtime kept its state where runc keeps it rootless: $XDG_RUNTIME_DIR/<runtime>
    # (Podman passes no --root), owned by the user.
    local id
    id=$(p inspect -f '{{.Id}}' web1)
    [ -d "$XDG/$RT_NAME/$id" ] || { WHY="no state dir $XDG/$RT_NAME/$id: $(oneline "$(ls -la "$XDG" "$XDG/$RT_NAME" 2>&1)")"; return 1; }
    [ "$(stat -c %u "$XDG/$RT_NAME/$id")" = "$RUID" ] || { WHY="state dir not owned by $RU"; return 1; }
}

t_exec() {
    ok "${P[@]}" exec web1 sh -c 'echo exec-ok $((40+2)); cat /proc/1/cmdline | tr "\0" " "' || return 1
    has "exec-ok 42" && has "sleep 1000" || return 1
    ok "${P[@]}" exec -e XV=from-exec -w /tmp -u 1000:1000 web1 sh -c 'echo "$XV $(pwd) $(id -u):$(id -g)"' || return 1
    has "from-exec /tmp 1000:1000" || return 1
    rc_is 6 "${P[@]}" exec web1 sh -c 'exit 6'
}

t_logs_ps() {
    ok "${P[@]}" logs web1 || return 1
    has started-web1 || return 1
    ok "${P[@]}" ps --format '{{.Names}} {{.Status}}' || return 1
    has "web1 Up"
}

t_stop_rm() {
    ok "${P[@]}" stop -t 2 web1 || return 1
    state_is web1 exited || return 1
    ok "${P[@]}" rm web1 || return 1
    ok "${P[@]}" run -d "${NET[@]}" --name web2 "$IMG" sleep 1000 || return 1
    state_is web2 running || return 1
    ok "${P[@]}" kill -s KILL web2 || return 1
    state_is web2 exited || return 1
    ok "${P[@]}" rm -f web2 || return 1
    ok "${P[@]}" ps -a --format '{{.Names}}' || return 1
    hasnt web2
}

t_volume() {
    echo from-host >"$T/share/in"
    chown "$RUID:$RGID" "$T/share/in"
    rm -f "$T/share/out"
    ok "${P[@]}" run --rm "${NET[@]}" -v "$T/share:/data" "$IMG" sh -c 'cat /data/in; echo from-container > /data/out' || return 1
    has from-host || return 1
    eq "file written through the volume" from-container "$(cat "$T/share/out" 2>/dev/null)" || return 1
    eq "owner of the file written by container root" "$RUID" "$(stat -c %u "$T/share/out")"
}

t_run_options() {
    ok "${P[@]}" run --rm "${NET[@]}" --user 1000:1000 -w /tmp --hostname rr-host -e FOO=bar "$IMG" \
        sh -c 'echo "$(id -u):$(id -g) $(pwd) $(hostname) $FOO"' || return 1
    has "1000:1000 /tmp rr-host bar" || return 1
    ok "${P[@]}" run --rm "${NET[@]}" --read-only --tmpfs /scratch "$IMG" \
        sh -c 'touch /x 2>/dev/null && echo root-writable; touch /scratch/y && echo tmpfs-ok' || return 1
    hasnt root-writable && has tmpfs-ok || return 1
    ok "${P[@]}" run --rm "${NET[@]}" --cap-drop ALL --cap-add CHOWN "$IMG" grep CapEff /proc/self/status || return 1
    has "0000000000000001"
}

t_tty_run() {
    run_tty $'echo hello-$((6*7))\nexit 3' "${P[@]}" run -it --rm "${NET[@]}" "$IMG" sh
    has "hello-42" || return 1
    eq "exit status of the interactive container" 3 "$RC"
}

# A limit through the user's delegated cgroup: only where Podman can apply one rootless
# (cgroup v2 with the systemd driver, the pids controller delegated to the user manager).
t_pids_limit() {
    local ctl=/sys/fs/cgroup/user.slice/user-$RUID.slice/user@$RUID.service/cgroup.controllers
    if [ "$DRIVER" != systemd ] || ! grep -qw pids "$ctl" 2>/dev/null; then
        SKIP_WHY="rootless limits need cgroup v2 with the systemd driver and pids delegated to the user"
        return 1
    fi
    ok "${P[@]}" run -d "${NET[@]}" --name pids1 --pids-limit 42 "$IMG" sleep 1000 || return 1
    state_is pids1 running || return 1
    local r=0 pid cg
    pid=$(pid_of pids1)
    cg=$(awk -F: '$1 == "0" { print $3 }' "/proc/$pid/cgroup")
    eq "pids.max of $cg" 42 "$(cat "/sys/fs/cgroup$cg/pids.max" 2>/dev/null)" || r=1
    case "$cg" in
        */user@$RUID.service/*) ;;
        *) WHY="container cgroup $cg is not under the user manager of $RU"; r=1 ;;
    esac
    p rm -f -t 0 pids1 >/dev/null 2>&1
    return $r
}

t_no_leaks() {
    local left
    left=$(p ps -aq)
    [ -z "$left" ] || { WHY="containers left: $(oneline "$left")"; return 1; }
    left=$(find "$XDG/$RT_NAME" -mindepth 1 -maxdepth 1 2>/dev/null)
    [ -z "$left" ] || { WHY="runtime state left: $(oneline "$left")"; return 1; }
}

scenario load t_load || { finish; exit 1; }
scenario run-rm t_run_rm
scenario run-detached-state-root t_run_detached
scenario exec t_exec
scenario logs-ps t_logs_ps
scenario stop-kill-rm t_stop_rm
scenario volume t_volume
scenario run-options t_run_options
scenario tty-run t_tty_run
scenario pids-limit t_pids_limit
scenario no-leaks t_no_leaks
finish
