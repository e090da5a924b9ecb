# Shared helpers for the caller scenarios (sourced by containerd.sh, podman.sh, docker.sh).
#
# A script sources this file, calls `lib_init NAME RUNTIME`, starts its daemon with
# `start_daemon`, runs `scenario NAME FUNCTION` for each scenario and ends with `finish`.
# Everything lives under one temp dir ($T) removed at exit; daemons are stopped by the pid
# this script recorded, never by name.
#
# A scenario that cannot run here sets SKIP_WHY and returns non-zero: SKIP, not FAIL.
# A scenario listed in $KNOWN_FAILURES_FILE that fails prints XFAIL and counts as skipped.
# A scenario function returns 0 for PASS; on failure it sets WHY (or leaves the last
# command's complaint there via `ok`/`has`) and returns non-zero. Per-scenario logs of every
# command and its output go to $T/logs/NAME.log and are printed after a FAIL line when
# VERBOSE=1 (and kept in $KEEP_LOGS if set).

set -u
PASSED=0
FAILED=0
SKIPPED=0
WHY=
OUT=
RC=0
SCEN_LOG=/dev/null
CLEANUPS=()
DAEMON_PIDS=()
# Seconds a single caller command may take before it counts as hung.
CMD_TIMEOUT=${CMD_TIMEOUT:-60}

log() { echo "[$LIB_NAME] $*" >&2; }

# lib_init NAME RUNTIME: checks root, resolves the runtime path, makes the temp dir, sets traps.
lib_init() {
    LIB_NAME=$1
    local rt=${2:-}
    if [ -z "$rt" ]; then
        echo "usage: $0 RUNTIME_BINARY" >&2
        exit 2
    fi
    case "$rt" in /*) ;; *) rt=$(cd "$(dirname "$rt")" && pwd)/$(basename "$rt") ;; esac
    if [ ! -x "$rt" ]; then
        echo "$LIB_NAME: runtime $rt is not executable" >&2
        exit 2
    fi
    RT=$rt
    RT_NAME=$(basename "$RT")
    if [ "$(id -u)" != 0 ]; then
        echo "$LIB_NAME: must run as root" >&2
        exit 2
    fi
    T=$(mktemp -d "/tmp/rr-$LIB_NAME.XXXXXX")
    chmod 755 "$T"
    mkdir -p "$T/logs"
    trap lib_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    log "runtime $RT ($("$RT" --version 2>/dev/null | head -1)), temp dir $T"
}

# on_exit CMD…: runs CMD (a string for eval) at exit, last registered first.
on_exit() { CLEANUPS+=("$*"); }

lib_cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local i
    for ((i = ${#CLEANUPS[@]} - 1; i >= 0; i--)); do
        eval "${CLEANUPS[$i]}" >>"$T/logs/cleanup.log" 2>&1 || true
    done
    for ((i = ${#DAEMON_PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${DAEMON_PIDS[$i]}"
    done
    unmount_under "$T"
    if [ -n "${KEEP_LOGS:-}" ]; then
        mkdir -p "$KEEP_LOGS" && cp -r "$T/logs/." "$KEEP_LOGS/" 2>/dev/null
    fi
    rm -rf "$T" 2>/dev/null || { unmount_under "$T"; rm -rf "$T" 2>/dev/null; }
    exit $rc
}

# stop_pid PID: TERM, then KILL after 20 s; only for processes this script started.
stop_pid() {
    local pid=$1 n=0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    while kill -0 "$pid" 2>/dev/null && [ $n -lt 200 ]; do
        sleep 0.1
        n=$((n + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid did not stop on TERM; KILL"
        kill -KILL "$pid" 2>/dev/null
    fi
    # Reap it if it is our child.
    wait "$pid" 2>/dev/null || true
}

# Unmounts every mount point under DIR (deepest first).
unmount_under() {
    local dir=$1 m
    awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo |
        sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
}

# start_daemon NAME CMD…: starts CMD in the background (output in $T/logs/NAME.log) and
# records its pid for the final stop. Sets DAEMON_PID.
start_daemon() {
    local name=$1
    shift
    "$@" >"$T/logs/$name.log" 2>&1 </dev/null &
    DAEMON_PID=$!
    DAEMON_PIDS+=("$DAEMON_PID")
    log "started $name (pid $DAEMON_PID)"
}

# wait_for SECS CMD…: polls CMD until it succeeds.
wait_for() {
    local secs=$1 n=0
    shift
    while ! "$@" >/dev/null 2>&1; do
        n=$((n + 1))
        [ $n -ge $((secs * 5)) ] && return 1
        sleep 0.2
    done
}

# Children of pid $1 (one level), from /proc.
child_pids() {
    local p
    for p in /proc/[0-9]*; do
        [ "$(awk '/^PPid:/ { print $2 }' "$p/status" 2>/dev/null)" = "$1" ] && echo "${p#/proc/}"
    done
}

# Pids of processes whose command line contains STRING (for processes this script's daemons
# started, e.g. shims named after our socket). Excludes this shell and its ancestors.
pids_with_cmdline() {
    local p
    for p in /proc/[0-9]*; do
        [ "${p#/proc/}" = "$$" ] && continue
        tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF -- "$1" && echo "${p#/proc/}"
    done
}

oneline() { printf '%s' "$*" | tr '\n' ' ' | tr -s ' ' | cut -c1-300; }
lastline() { printf '%s\n' "$*" | grep -v '^[[:space:]]*$' | tail -n 3 | tr '\n' ' ' | cut -c1-300; }

# run CMD…: runs CMD with a timeout, stdout+stderr in $OUT, status in $RC; always returns 0.
run() {
    printf '+ %s\n' "$*" >>"$SCEN_LOG"
    OUT=$(timeout -k 5 "$CMD_TIMEOUT" "$@" 2>&1 </dev/null)
    RC=$?
    printf '%s\n[rc=%s]\n' "$OUT" "$RC" >>"$SCEN_LOG"
    return 0
}

# run_in INPUT CMD…: like run with INPUT on stdin.
run_in() {
    local input=$1
    shift
    printf '+ %s <<< %q\n' "$*" "$input" >>"$SCEN_LOG"
    OUT=$(printf '%s' "$input" | timeout -k 5 "$CMD_TIMEOUT" "$@" 2>&1)
    RC=$?
    printf '%s\n[rc=%s]\n' "$OUT" "$RC" >>"$SCEN_LOG"
    return 0
}

# run_tty "LINE…" CMD…: runs CMD on a pseudo-terminal (util-linux script) feeding each LINE
# with a pause before it, as a person typing. $OUT is what the terminal showed, $RC the exit
# status.
run_tty() {
    local lines=$1
    shift
    local cmd
    cmd=$(printf '%q ' "$@")
    printf '+ [tty] %s <<< %q\n' "$cmd" "$lines" >>"$SCEN_LOG"
    OUT=$( (
        printf '%s\n' "$lines" | while IFS= read -r l; do
            sleep "${TTY_DELAY:-1.5}"
            printf '%s\n' "$l"
        done
        sleep 2
    ) | timeout -k 5 "$CMD_TIMEOUT" script -qefc "$cmd" /dev/null 2>&1)
    RC=$?
    OUT=$(printf '%s' "$OUT" | tr -d '\r')
    printf '%s\n[rc=%s]\n' "$OUT" "$RC" >>"$SCEN_LOG"
    return 0
}

# ok CMD…: run, and fail (with WHY) unless it exits 0.
ok() {
    run "$@"
    [ "$RC" -eq 0 ] && return 0
    WHY="'$(oneline "$*" | cut -c1-120)' exited $RC: $(lastline "$OUT")"
    return 1
}

# rc_is N CMD…: run, and fail unless it exits N.
rc_is() {
    local want=$1
    shift
    run "$@"
    [ "$RC" -eq "$want" ] && return 0
    WHY="'$(oneline "$*" | cut -c1-120)' exited $RC, expected $want: $(lastline "$OUT")"
    return 1
}

# has TEXT: the last command's output contains TEXT.
has() {
    # An empty TEXT is in every output: a check built on a lookup that found nothing fails.
    if [ -z "$1" ]; then
        WHY="nothing to look for (empty text) in: $(oneline "$OUT")"
        return 1
    fi
    case "$OUT" in *"$1"*) return 0 ;; esac
    WHY="expected '$1' in the output, got: $(oneline "$OUT")"
    return 1
}

# hasnt TEXT: the last command's output does not contain TEXT.
hasnt() {
    case "$OUT" in *"$1"*)
        WHY="did not expect '$1' in the output: $(oneline "$OUT")"
        return 1
        ;;
    esac
    return 0
}

# eq WHAT EXPECTED ACTUAL
eq() {
    [ "$2" = "$3" ] && return 0
    WHY="$1: expected '$2', got '$(oneline "$3")'"
    return 1
}

# until_ok SECS CMD…: retries CMD until it exits 0 (output of the last try in $OUT).
until_ok() {
    local secs=$1 n=0
    shift
    while :; do
        run "$@"
        [ "$RC" -eq 0 ] && return 0
        n=$((n + 1))
        if [ $n -ge $((secs * 4)) ]; then
            WHY="'$(oneline "$*" | cut -c1-120)' did not succeed within ${secs}s: $(lastline "$OUT")"
            return 1
        fi
        sleep 0.25
    done
}

# host_cgroup_file PID CONTROLLER FILE: path of FILE in PID's cgroup of CONTROLLER on the host
# (v1 hierarchy named CONTROLLER, else the unified hierarchy).
host_cgroup_file() {
    local pid=$1 ctl=$2 file=$3 path mnt
    path=$(awk -F: -v c="$ctl" '{ n = split($2, a, ","); for (i = 1; i <= n; i++) if (a[i] == c) print $3 }' "/proc/$pid/cgroup")
    if [ -n "$path" ] && [ -d "/sys/fs/cgroup/$ctl" ]; then
        echo "/sys/fs/cgroup/$ctl$path/$file"
        return
    fi
    path=$(awk -F: '$1 == "0" { print $3 }' "/proc/$pid/cgroup")
    for mnt in /sys/fs/cgroup/unified /sys/fs/cgroup; do
        if [ -e "$mnt/cgroup.controllers" ]; then
            echo "$mnt$path/$file"
            return
        fi
    done
}

# cgroup_value_is PID CONTROLLER FILE EXPECTED: the host-side value of a cgroup file of PID.
cgroup_value_is() {
    local f v
    f=$(host_cgroup_file "$1" "$2" "$3")
    v=$(cat "$f" 2>/dev/null)
    printf 'cgroup %s = %s\n' "$f" "$v" >>"$SCEN_LOG"
    [ "$v" = "$4" ] && return 0
    WHY="$2 $3 of pid $1 is '$v' (${f:-no cgroup file}), expected '$4'"
    return 1
}

# cgroup_v1_has PID CONTROLLER: PID's CONTROLLER is on a v1 hierarchy (else on cgroup2).
cgroup_v1_has() {
    local path
    path=$(awk -F: -v c="$2" '{ n = split($2, a, ","); for (i = 1; i <= n; i++) if (a[i] == c) print $3 }' "/proc/$1/cgroup")
    [ -n "$path" ] && [ -d "/sys/fs/cgroup/$2" ]
}

# memory_limit_is PID BYTES: memory.limit_in_bytes (v1) or memory.max (v2) of PID's cgroup.
memory_limit_is() {
    if cgroup_v1_has "$1" memory; then
        cgroup_value_is "$1" memory memory.limit_in_bytes "$2"
    else
        cgroup_value_is "$1" memory memory.max "$2"
    fi
}

# cpu_limits_are PID QUOTA PERIOD SHARES: v1 cpu.cfs_quota_us/cpu.cfs_period_us/cpu.shares; v2
# cpu.max "QUOTA PERIOD" and cpu.weight converted from SHARES, by either conversion runtimes use:
# the linear 1 + (shares - 2) * 9999 / 262142 (runc < 1.3, crun < 1.23) or the quadratic function
# of log2(shares) (runc >= 1.3, crun >= 1.23), rounded up.
cpu_limits_are() {
    local pid=$1 quota=$2 period=$3 shares=$4
    if cgroup_v1_has "$pid" cpu; then
        cgroup_value_is "$pid" cpu cpu.cfs_quota_us "$quota" &&
            cgroup_value_is "$pid" cpu cpu.cfs_period_us "$period" &&
            cgroup_value_is "$pid" cpu cpu.shares "$shares"
        return
    fi
    cgroup_value_is "$pid" cpu cpu.max "$quota $period" || return 1
    local lin quad f v
    lin=$((1 + (shares - 2) * 9999 / 262142))
    quad=$(awk -v s="$shares" 'BEGIN { l = log(s) / log(2); e = (l * l + 125 * l) / 612 - 7 / 34;
        w = 10 ^ e; c = int(w); if (c < w) c++; print c }')
    f=$(host_cgroup_file "$pid" cpu cpu.weight)
    v=$(cat "$f" 2>/dev/null)
    printf 'cgroup %s = %s (shares %s: linear %s, quadratic %s)\n' "$f" "$v" "$shares" "$lin" "$quad" >>"$SCEN_LOG"
    [ "$v" = "$lin" ] || [ "$v" = "$quad" ] && return 0
    WHY="cpu.weight of pid $pid is '$v' ($f), expected $lin or $quad for cpu shares $shares"
    return 1
}

# cgroup_frozen PID: PID's cgroup is frozen (v1 freezer.state FROZEN, v2 cgroup.events frozen 1).
cgroup_frozen() {
    local f v
    if cgroup_v1_has "$1" freezer; then
        f=$(host_cgroup_file "$1" freezer freezer.state)
        v=$(cat "$f" 2>/dev/null)
        [ "$v" = FROZEN ] && return 0
    else
        f=$(host_cgroup_file "$1" freezer cgroup.events)
        v=$(awk '$1 == "frozen" { print $2 }' "$f" 2>/dev/null)
        [ "$v" = 1 ] && return 0
    fi
    WHY="pid $1 is not frozen: $f says '$v'"
    return 1
}

# Top-level cgroup directories (in every hierarchy) that did not exist when recorded; removed
# at exit if empty (the parents callers create, e.g. /<ctr namespace>, /docker, /libpod_parent).
# The directories where callers' top-level parents appear: under each v1 controller and the
# hybrid unified mount, or directly under /sys/fs/cgroup on a pure cgroup2 host.
cgroup_parent_globs() {
    if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
        echo /sys/fs/cgroup/*/
    else
        echo /sys/fs/cgroup/*/*/ /sys/fs/cgroup/unified/*/
    fi
}
record_cgroup_parents() {
    local d
    CG_BEFORE=$(for d in $(cgroup_parent_globs); do echo "$d"; done 2>/dev/null)
    on_exit remove_new_cgroup_parents
}
remove_new_cgroup_parents() {
    local d
    for d in $(cgroup_parent_globs); do
        [ -d "$d" ] || continue
        printf '%s\n' "$CG_BEFORE" | grep -qxF "$d" && continue
        # Only directories named like the parents our callers create.
        case "$d" in
            */"${CG_PARENT_NAME:-_none_}"/) find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null ;;
        esac
    done
}

# scenario NAME FUNCTION [ARGS…]: runs one scenario, prints PASS/FAIL.
scenario() {
    local name=$1
    shift
    WHY=
    SCEN_LOG=$T/logs/$name.log
    : >"$SCEN_LOG"
    if [ -n "${ONLY:-}" ] && ! printf '%s' "$name" | grep -qE -- "$ONLY"; then
        return 0
    fi
    local known
    known=$(known_failure "$name")
    SKIP_WHY=
    if "$@"; then
        echo "PASS $name${known:+ (listed as a known failure: \"$known\"; remove it from the list)}"
        PASSED=$((PASSED + 1))
    elif [ -n "$SKIP_WHY" ]; then
        skip "$name" "$SKIP_WHY"
    elif [ -n "$known" ]; then
        echo "XFAIL $name (${WHY:-the scenario returned non-zero}) [known: $known]"
        SKIPPED=$((SKIPPED + 1))
    else
        echo "FAIL $name (${WHY:-the scenario returned non-zero})"
        FAILED=$((FAILED + 1))
        if [ "${VERBOSE:-0}" = 1 ]; then
            sed 's/^/    | /' "$SCEN_LOG" | tail -n 40
        fi
        SCEN_LOG=/dev/null
        return 1
    fi
    SCEN_LOG=/dev/null
}

# The reason if CALLER:SCENARIO is listed in $KNOWN_FAILURES_FILE (lines "caller:scenario
# reason…"; run-all.sh points it at integration/known-failures for rruntime).
known_failure() {
    [ -n "${KNOWN_FAILURES_FILE:-}" ] && [ -f "$KNOWN_FAILURES_FILE" ] || return 0
    awk -v k="$LIB_NAME:$1" '$1 == k { $1 = ""; sub(/^ +/, ""); print; exit }' "$KNOWN_FAILURES_FILE"
}

skip() {
    echo "SKIP $1 ($2)"
    SKIPPED=$((SKIPPED + 1))
}

# finish: the summary line; exit status 1 if anything failed.
finish() {
    echo "($LIB_NAME with $RT)"
    echo "$LIB_NAME: $PASSED passed, $FAILED failed, $SKIPPED skipped"
    [ "$FAILED" -eq 0 ]
}

# A free TCP port on 127.0.0.1 (best effort).
free_port() {
    local p
    for p in $(seq $((20000 + $$ % 20000)) $((20100 + $$ % 20000))); do
        if ! (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    echo 28080
}

# The runtime's JSON log lines of level error (for diagnosis), from log files under $1.
runtime_errors() {
    grep -rhs '"level":"error"' "$1" 2>/dev/null | tail -n 5
}

# build_image: builds the busybox image archives into $T/image once.
build_image() {
    [ -f "$T/image/busybox-oci.tar" ] && return 0
    "$LIB_DIR/build-image.sh" "$T/image" "${IMAGE_NAME:-rrbusybox:latest}" >>"$T/logs/image.log" 2>&1
}
