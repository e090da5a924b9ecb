#!/bin/bash
# rruntime benchmark: rruntime vs crun vs runc vs the unshare+chroot floor, same host, same
# busybox bundle, one run, interleaved. See docs/benchmarks.md.
#
# usage: integration/bench/bench.sh [-o RESULTS_DIR] [-r RUNS] [-q] [RRUNTIME]
#   RRUNTIME        rruntime binary (default target/release/rruntime)
#   -o DIR          where results go (default /tmp/rruntime-bench-<date>)
#   -r N            samples per runtime and measurement (default 20, minimum 20 unless -q)
#   -q              quick smoke run: 3 samples (or -r N), 10 sequential, 8 parallel (numbers not
#                   meaningful)
# environment: SEQ_N (100) containers in the sequential measurement, PAR_N (20) / PAR_J (4)
#   containers / workers in the parallel one, WARMUP (3) `run`s per runtime before measuring
#   anything (each measurement also discards one warm-up sample per participant, and the quick
#   ones run the command once more, unmeasured, before each sample).
#
# Needs root. Installs runc, crun, hyperfine, time, busybox-static and jq with apt-get if missing.
# Leaves nothing behind but the results directory (also on Ctrl-C).
set -u
export LC_ALL=C

usage() { sed -n '5,17p' "$0" | sed 's/^# \{0,1\}//'; }

HERE=$(cd "$(dirname "$0")" && pwd)
RUNS=20 QUICK=0 RES= RUNS_SET=
while getopts o:r:qh opt; do
    case $opt in
    o) RES=$OPTARG ;;
    r) RUNS=$OPTARG RUNS_SET=1 ;;
    q) QUICK=1 ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
RT=${1:-target/release/rruntime}
case "$RT" in /*) ;; *) RT="$(pwd)/$RT" ;; esac
SEQ_N=${SEQ_N:-100} PAR_N=${PAR_N:-20} PAR_J=${PAR_J:-4} WARMUP=${WARMUP:-3}
if [ "$QUICK" = 1 ]; then
    [ -n "${RUNS_SET:-}" ] || RUNS=3
    SEQ_N=10 PAR_N=8 WARMUP=1
fi
case "$RUNS$SEQ_N$PAR_N$PAR_J$WARMUP" in *[!0-9]*) echo "bench: counts must be numbers" >&2; exit 2 ;; esac
if [ "$QUICK" = 0 ] && [ "$RUNS" -lt 20 ]; then
    echo "bench: at least 20 samples per measurement (-q for a smoke run)" >&2; exit 2
fi
STAMP=$(date +%Y%m%d-%H%M%S)
RES=${RES:-/tmp/rruntime-bench-$STAMP}

exec 9>&2                       # the real stderr, for messages from traps (see cleanup)
die() { echo "bench: $*" >&2; exit 1; }
log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

[ "$(id -u)" = 0 ] || die "run as root (containers need namespaces, mounts and cgroups)"
[ -x "$RT" ] || die "no rruntime binary at $RT (cargo build --release, or make bench)"

# --- tools -----------------------------------------------------------------------------------
need=
for pair in hyperfine:hyperfine /usr/sbin/runc:runc /usr/bin/crun:crun /usr/bin/time:time \
            /bin/busybox:busybox-static jq:jq unshare:util-linux nsenter:util-linux; do
    cmd=${pair%%:*} pkg=${pair#*:}
    case "$cmd" in
    /*) [ -x "$cmd" ] || need="$need $pkg" ;;
    *) command -v "$cmd" >/dev/null 2>&1 || need="$need $pkg" ;;
    esac
done
# busybox must be the static one: the container has no libraries.
if [ -x /bin/busybox ] && ! file -L /bin/busybox 2>/dev/null | grep -q static \
   && ldd /bin/busybox >/dev/null 2>&1; then
    need="$need busybox-static"
fi
if [ -n "$need" ]; then
    log "installing:$need"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y $need >/dev/null 2>&1 ||
        { apt-get update >/dev/null 2>&1 && apt-get install -y $need >/dev/null; } ||
        die "apt-get install$need failed"
fi
RUNC=/usr/sbin/runc CRUN=/usr/bin/crun BUSYBOX=/bin/busybox
export BUSYBOX

# crun 1.8 refuses a hybrid host (v1 controllers + cgroup2 at /sys/fs/cgroup/unified): it runs,
# for crun only, in a private mount namespace where the unified mount is gone (see docs).
CRUN_NS=0
if [ "$(stat -f -c %T /sys/fs/cgroup 2>/dev/null)" = tmpfs ] &&
   [ "$(stat -f -c %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then
    CRUN_NS=1
fi
# in_rt_ns RUNTIME CMD...: runs CMD in the mount namespace the runtime is measured in.
in_rt_ns() {
    local _rt=$1; shift
    if [ "$_rt" = crun ] && [ "$CRUN_NS" = 1 ]; then
        unshare -m sh -c 'umount -l /sys/fs/cgroup/unified && exec "$@"' sh "$@"
    else
        "$@"
    fi
}

# --- workspace, state roots, cleanup ----------------------------------------------------------
RUNTIMES="rruntime crun runc"
PREFIX=rrbench                        # every container id and cgroup name starts with this
WORK=$(mktemp -d /tmp/rrbench.XXXXXX) || die "mktemp failed"
root_of() { echo "/run/rruntime-bench-$1"; }
bin_of() { case $1 in rruntime) echo "$RT" ;; crun) echo "$CRUN" ;; runc) echo "$RUNC" ;; esac; }
# X: the runtime's command line (binary + its own --root), as a string for shells and hyperfine.
X() { echo "$(bin_of "$1") --root $(root_of "$1")"; }
# XS: the same with the systemd cgroup driver (global flag, before the sub-command).
XS() { echo "$(X "$1") --systemd-cgroup"; }
# The systemd-driver rows need systemd as PID 1 on a pure cgroup v2 host (rruntime's driver
# works there only; on the hybrid development host they are n/a).
SD=0 SD_NA="systemd is not PID 1"
if [ -d /run/systemd/system ]; then
    if [ "$(stat -f -c %T /sys/fs/cgroup 2>/dev/null)" = cgroup2fs ]; then
        SD=1 SD_NA=
    else
        SD_NA="cgroups are not pure v2"
    fi
fi
# stop_units: stops and forgets our transient units (every one is named rrbench-*)
stop_units() {
    [ "$SD" = 1 ] || return 0
    local _u
    for _u in $(systemctl list-units --all --plain --no-legend "$PREFIX-*" 2>/dev/null | awk '{print $1}'); do
        systemctl stop "$_u" >/dev/null 2>&1
        systemctl reset-failed "$_u" >/dev/null 2>&1
    done
}

# forget RUNTIME: force-deletes all our containers in the runtime's state root
forget() {
    local _r _id
    _r=$(root_of "$1")
    [ -d "$_r" ] || return 0
    for _id in $(ls "$_r" 2>/dev/null); do
        case $_id in "$PREFIX"-*) in_rt_ns "$1" $(X "$1") delete --force "$_id" >/dev/null 2>&1 ;; esac
    done
}
CLEANED=0
OWN_ROOTS=0                  # set once the state roots are known to be ours (checked below)
cleanup() {
    local rt leaked d
    [ "$CLEANED" = 1 ] && return
    exec 2>&9                    # a trap may run inside a function's redirection
    CLEANED=1
    trap '' INT TERM
    if [ "$OWN_ROOTS" != 1 ]; then
        # Another bench owns the roots (or we stopped before checking): touch nothing of it.
        rm -rf "$WORK"
        return
    fi
    touch "$WORK/stop" 2>/dev/null      # parallel workers stop at their next container
    sleep 0.3
    for rt in $RUNTIMES; do forget "$rt"; done
    stop_units
    # Whatever a runtime failed to remove: our cgroups (kill what is still in them, by pid).
    leaked=$(find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -type d -name "$PREFIX-*" 2>/dev/null)
    if [ -n "$leaked" ]; then
        for d in $leaked; do
            find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | while read -r p; do
                kill -9 "$p" 2>/dev/null
            done
        done
        sleep 0.2
        for d in $leaked; do find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done
        echo "bench: removed cgroups left behind:" $leaked >&9
    fi
    grep -F "$WORK" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null
    done
    for rt in $RUNTIMES; do rm -rf "$(root_of "$rt")"; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "bench: interrupted, cleaning up" >&9; exit 130' INT TERM HUP

for rt in $RUNTIMES; do
    r=$(root_of "$rt")
    if [ -d "$r" ] && [ -n "$(ls "$r")" ]; then
        die "state root $r is not empty (another bench running?)"
    fi
done
OWN_ROOTS=1
mkdir -p "$RES/raw" || die "cannot create $RES"

# --- bundles ---------------------------------------------------------------------------------
. "$HERE/../lib/bundle.sh"
export BUNDLE_OCI_VERSION=1.0.2-dev   # crun 1.8 accepts 1.0.x only; runc's `spec` default
export BUNDLE_MOUNTS=spec BUNDLE_HOSTNAME=bench
B=$WORK/bundle                         # /bin/true
bundle_rootfs "$B" || die "bundle failed"
bundle_config "$B" '["/bin/true"]'
BS=$WORK/sleep                         # a long-running container to exec into
mkdir -p "$BS"
BUNDLE_ROOT_PATH=$B/rootfs bundle_config "$BS" '["/bin/sleep", "100000"]'
for rt in $RUNTIMES; do                # /bin/true in a fresh cgroup of our own, per runtime
    mkdir -p "$WORK/mem-$rt"
    BUNDLE_ROOT_PATH=$B/rootfs BUNDLE_CGROUPS_PATH=/$PREFIX-mem-$rt bundle_config "$WORK/mem-$rt" '["/bin/true"]'
done
if [ "$SD" = 1 ]; then                 # /bin/true in a transient scope system.slice/rrbench-<rt>-sd.scope
    for rt in $RUNTIMES; do
        mkdir -p "$WORK/sd-$rt"
        BUNDLE_ROOT_PATH=$B/rootfs BUNDLE_CGROUPS_PATH=system.slice:$PREFIX:$rt-sd bundle_config "$WORK/sd-$rt" '["/bin/true"]'
    done
fi
FLOOR="unshare --fork --pid --mount --uts --ipc --net chroot $B/rootfs /bin/true"

# --- machine description ---------------------------------------------------------------------
{
    echo "date:      $(date -Is)"
    echo "host:      $(uname -srm), $(nproc) CPUs, $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
    echo "memory:    $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "cgroups:   $(stat -f -c %T /sys/fs/cgroup)$( [ -d /sys/fs/cgroup/unified ] && echo " + cgroup2 at /sys/fs/cgroup/unified (hybrid)")"
    echo "rruntime:  $("$RT" --version 2>/dev/null | tr '\n' ' ')"
    echo "crun:      $($CRUN --version | head -1)"
    echo "runc:      $($RUNC --version | head -1)"
    echo "hyperfine: $(hyperfine --version)"
    echo "load avg:  $(cut -d' ' -f1-3 /proc/loadavg) at start (other work on the host skews results)"
    echo "samples:   $RUNS per runtime and measurement; $SEQ_N sequential; $PAR_N with $PAR_J parallel"
} > "$RES/machine.txt"
cat "$RES/machine.txt" >&2

# --- the measurement driver ------------------------------------------------------------------
# Hyperfine runs the commands it is given one after the other, all runs of the first first, so
# to interleave, every sample is its own hyperfine call (--runs 1), and the runtimes take turns,
# the order rotating each round. crun's hyperfine runs inside crun's mount namespace, so the
# namespace costs crun nothing. Raw JSON: $RES/raw/<measurement>/<runtime>-<round>.json.
FAILED=
# hf MEASUREMENT RUNTIME ROUND SHELL(none|sh) WARMUP COMMAND
hf() {
    local _m=$1 _rt=$2 _r=$3 _sh=$4 _w=$5 _cmd=$6
    mkdir -p "$RES/raw/$_m"
    case " $FAILED " in *" $_m/$_rt "*) return 1 ;; esac
    # a measurement M with a function prep_M: its command runs before every run (warm-up
    # included) and once after, unmeasured
    local _prep=()
    if type "prep_$_m" >/dev/null 2>&1; then
        _prep=(--prepare "$(prep_"$_m" "$_rt")" --cleanup "$(prep_"$_m" "$_rt")")
    fi
    if ! in_rt_ns "$_rt" hyperfine --style none --shell="$_sh" --runs 1 --warmup "$_w" "${_prep[@]}" \
            --export-json "$RES/raw/$_m/$_rt-$(printf %03d "$_r").json" "$_cmd" \
            >"$WORK/hf.out" 2>&1; then
        FAILED="$FAILED $_m/$_rt"
        echo "bench: $_m failed for $_rt: $_cmd" >&2
        tail -3 "$WORK/hf.out" >&2
        # show the failure itself: once more, from a clean state, with its output
        forget "$_rt"
        echo "bench: replaying it:" >&2
        in_rt_ns "$_rt" sh -c "$_cmd" 2>&1 | tail -5 >&2
        forget "$_rt"
        return 1
    fi
}
# rotate N LIST...: the list rotated left by N
rotate() { local _n=$1 _c _i _x; shift; _c=$#; _n=$((_n % _c)); _i=0
    for _x in "$@"; do [ $_i -ge $_n ] && printf '%s ' "$_x"; _i=$((_i + 1)); done
    _i=0; for _x in "$@"; do [ $_i -lt $_n ] && printf '%s ' "$_x"; _i=$((_i + 1)); done; }
# measure MEASUREMENT SHELL WARMUP_PER_SAMPLE PARTICIPANTS... ; the command of participant P is
# produced by the function cmd_<MEASUREMENT> P (participants: runtimes and "floor").
measure() {
    local _m=$1 _sh=$2 _w=$3 _parts _p _r; shift 3
    _parts="$*"
    log "$_m: warm-up"
    for _p in $_parts; do hf "$_m" "$_p" 0 "$_sh" 0 "$(cmd_"$_m" "$_p")" >/dev/null; done
    rm -f "$RES/raw/$_m/"*-000.json
    for _r in $(seq 1 "$RUNS"); do
        printf '\r%s %s: sample %d/%d ' "$(date +%T)" "$_m" "$_r" "$RUNS" >&2
        for _p in $(rotate "$_r" $_parts); do
            hf "$_m" "$_p" "$_r" "$_sh" "$_w" "$(cmd_"$_m" "$_p")" >/dev/null
        done
    done
    printf '\n' >&2
}

# 1. run /bin/true (run without -d deletes the container itself)
cmd_run() { case $1 in floor) echo "$FLOOR" ;; *) echo "$(X "$1") run -b $B $PREFIX-$1-run" ;; esac; }
# 2. create, start, wait for the process to exit, delete: four invocations. The wait polls
#    /proc/<pid>/stat with shell builtins only until the process is a zombie (what the runtimes
#    call "stopped") or gone, so it costs every runtime the same; it is part of the time, as it
#    is for any caller. (Its parent is pid 1, which reaps when it likes, hence zombie or gone.)
WAIT_EXIT='while read -r _ _ s _ < /proc/$p/stat && [ "$s" != Z ] && [ "$s" != X ]; do :; done 2>/dev/null'
cmd_lifecycle() {
    local _x _id=$PREFIX-$1-lc _pf=$WORK/$1-lc.pid
    _x=$(X "$1")
    echo "$_x create --pid-file $_pf -b $B $_id && $_x start $_id && { p=; read p < $_pf; [ -n \"\$p\" ]; } && $WAIT_EXIT && $_x delete $_id"
}
# 2b. create alone (the container's init left waiting for start); a forced delete before each
#     sample and after the last, unmeasured
cmd_create() { echo "$(X "$1") create -b $B $PREFIX-$1-cr"; }
prep_create() { echo "$(X "$1") delete --force $PREFIX-$1-cr >/dev/null 2>&1; true"; }
# 2c. the systemd cgroup driver (--systemd-cgroup, cgroupsPath system.slice:rrbench:<rt>-sd):
#     create alone, run, and create+start+wait+delete, as above
cmd_sdcreate() { echo "$(XS "$1") create -b $WORK/sd-$1 $PREFIX-$1-sdcr"; }
prep_sdcreate() { echo "$(XS "$1") delete --force $PREFIX-$1-sdcr >/dev/null 2>&1; true"; }
cmd_sdrun() { echo "$(XS "$1") run -b $WORK/sd-$1 $PREFIX-$1-sdrun"; }
cmd_sdlifecycle() {
    local _x _id=$PREFIX-$1-sdlc _pf=$WORK/$1-sdlc.pid
    _x=$(XS "$1")
    echo "$_x create --pid-file $_pf -b $WORK/sd-$1 $_id && $_x start $_id && { p=; read p < $_pf; [ -n \"\$p\" ]; } && $WAIT_EXIT && $_x delete $_id"
}
# 3. SEQ_N containers one after the other
cmd_seq() {
    local _c
    case $1 in floor) _c=$FLOOR ;; *) _c="$(X "$1") run -b $B $PREFIX-$1-seq" ;; esac
    echo "i=0; while [ \$i -lt $SEQ_N ]; do $_c || exit 1; i=\$((i+1)); done"
}
# 4. PAR_N containers, PAR_J at a time (PAR_J workers with PAR_N/PAR_J each)
cmd_par() {
    local _c _per=$((PAR_N / PAR_J))
    case $1 in floor) _c=$FLOOR ;; *) _c="$(X "$1") run -b $B $PREFIX-$1-par\$w" ;; esac
    echo "pids=; for w in \$(seq 1 $PAR_J); do (i=0; while [ \$i -lt $_per ]; do [ -e $WORK/stop ] && exit 1; $_c || exit 1; i=\$((i+1)); done) & pids=\"\$pids \$!\"; done; rc=0; for p in \$pids; do wait \$p || rc=1; done; exit \$rc"
}
# 5. exec /bin/true into a running container; the floor joins its namespaces with nsenter
cmd_exec() {
    case $1 in
    floor) echo "nsenter -t $EXEC_FLOOR_PID -m -u -i -n -p -r -w /bin/true" ;;
    *) echo "$(X "$1") exec $PREFIX-$1-exec /bin/true" ;;
    esac
}

T0=$(date +%s)
log "results go to $RES"

# warm-up of caches (binaries, bundle, cgroup trees) before anything is measured
for rt in $RUNTIMES; do
    for i in $(seq 1 "$WARMUP"); do
        in_rt_ns "$rt" $(X "$rt") run -b "$B" "$PREFIX-$rt-warm" >/dev/null 2>&1 ||
            die "$rt cannot run the bundle: $(in_rt_ns "$rt" $(X "$rt") run -b "$B" "$PREFIX-$rt-warm" 2>&1 | tail -3)"
    done
done

ALL="$RUNTIMES floor"
measure run none 1 $ALL
measure lifecycle sh 1 $RUNTIMES
measure create sh 1 $RUNTIMES
if [ "$SD" = 1 ]; then
    measure sdcreate sh 1 $RUNTIMES
    measure sdrun none 1 $RUNTIMES
    measure sdlifecycle sh 1 $RUNTIMES
    stop_units
fi
measure seq sh 0 $ALL
measure par sh 0 $ALL

# exec: a sleeping container per runtime
EXEC_RTS=
EXEC_NA=
for rt in $RUNTIMES; do
    if ! in_rt_ns "$rt" sh -c "$(X "$rt") create -b $BS $PREFIX-$rt-exec && $(X "$rt") start $PREFIX-$rt-exec" \
            >"$WORK/exec.out" 2>&1; then
        echo "bench: $rt could not start the container to exec into: $(tail -2 "$WORK/exec.out")" >&2
        FAILED="$FAILED exec/$rt"
        continue
    fi
    if in_rt_ns "$rt" $(X "$rt") exec "$PREFIX-$rt-exec" /bin/true >"$WORK/exec.out" 2>&1; then
        EXEC_RTS="$EXEC_RTS $rt"
    else
        EXEC_NA="$EXEC_NA $rt"
        echo "bench: $rt exec: n/a ($(tail -1 "$WORK/exec.out"))" >&2
        echo "$rt: $(tail -1 "$WORK/exec.out")" >> "$RES/exec-na.txt"
    fi
done
EXEC_FLOOR_PID=
for rt in runc crun rruntime; do
    EXEC_FLOOR_PID=$(in_rt_ns "$rt" $(X "$rt") state "$PREFIX-$rt-exec" 2>/dev/null | jq -r '.pid // empty')
    [ -n "$EXEC_FLOOR_PID" ] && [ "$EXEC_FLOOR_PID" != 0 ] && break
done
if [ -n "$EXEC_RTS" ]; then
    if [ -n "$EXEC_FLOOR_PID" ]; then
        measure exec none 1 $EXEC_RTS floor
    else
        measure exec none 1 $EXEC_RTS
    fi
fi
for rt in $RUNTIMES; do
    in_rt_ns "$rt" $(X "$rt") delete --force "$PREFIX-$rt-exec" >/dev/null 2>&1
done

# 6a. peak RSS of the runtime process during `run` (GNU time's %M: ru_maxrss from wait4, which
#     covers the process and the children it reaped, e.g. runc's `runc init`).
# 6b. memory charged to the container's cgroup: create, start, wait for exit, read the v1
#     memory.max_usage_in_bytes of the fresh cgroup (cgroupsPath), delete (which removes it).
MEMCG=/sys/fs/cgroup/memory
log "memory: peak RSS and cgroup charge, $RUNS samples each"
for r in $(seq 1 "$RUNS"); do
    printf '\r%s memory: sample %d/%d ' "$(date +%T)" "$r" "$RUNS" >&2
    for rt in $(rotate "$r" $RUNTIMES); do
        in_rt_ns "$rt" /usr/bin/time -f %M -o "$WORK/rss" $(X "$rt") run -b "$B" "$PREFIX-$rt-rss" \
            >/dev/null 2>&1 && cat "$WORK/rss" >> "$RES/raw/rss-$rt.txt"
        [ -d "$MEMCG" ] || continue
        cg=$MEMCG/$PREFIX-mem-$rt id=$PREFIX-$rt-mem pf=$WORK/$rt-mem.pid
        [ -d "$cg" ] && { echo "bench: $cg exists before create (left by a delete?)" >&2; rmdir "$cg"; }
        x=$(X "$rt")
        in_rt_ns "$rt" sh -c "$x create --pid-file $pf -b $WORK/mem-$rt $id && $x start $id && { p=; read p < $pf; [ -n \"\$p\" ]; } &&
            $WAIT_EXIT && cat $cg/memory.max_usage_in_bytes && $x delete $id" \
            > "$WORK/mem.out" 2>&1
        if [ $? = 0 ]; then
            echo $(( $(head -1 "$WORK/mem.out") / 1024 )) >> "$RES/raw/cgmem-$rt.txt"
        else
            echo "bench: cgroup memory sample failed for $rt: $(tail -1 "$WORK/mem.out")" >&2
            in_rt_ns "$rt" $x delete --force "$id" >/dev/null 2>&1
        fi
        [ -d "$cg" ] && echo "bench: $rt left $cg behind after delete" >&2
    done
done
printf '\n' >&2
ELAPSED=$(( $(date +%s) - T0 ))

# --- summary ---------------------------------------------------------------------------------
# median of the times (s) of all samples of a participant, in ms; empty if none
med_ms() {
    ls "$RES/raw/$1/$2"-*.json >/dev/null 2>&1 || return
    jq -s '[.[].results[].times[]] | sort |
        if length == 0 then empty
        elif length % 2 == 1 then .[length/2|floor] else (.[length/2-1] + .[length/2]) / 2 end
        | . * 1000' "$RES/raw/$1/$2"-*.json
}
med_file() {
    [ -s "$1" ] || return
    sort -n "$1" | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}
# merged hyperfine-style JSON per measurement: one result per participant, all samples
for m in run lifecycle create sdcreate sdrun sdlifecycle seq par exec; do
    [ -d "$RES/raw/$m" ] || continue
    for p in $ALL; do
        ls "$RES/raw/$m/$p"-*.json >/dev/null 2>&1 || continue
        jq -s --arg p "$p" '{participant: $p, command: .[0].results[0].command,
            times: [.[].results[].times[]], exit_codes: [.[].results[].exit_codes[]]}
            | .times as $t | ($t | sort) as $s | . + {runs: ($t|length), min: $s[0], max: $s[-1],
              mean: (($t|add) / ($t|length)),
              median: (if ($s|length) % 2 == 1 then $s[($s|length)/2|floor]
                       else ($s[($s|length)/2-1] + $s[($s|length)/2]) / 2 end)}' \
            "$RES/raw/$m/$p"-*.json
    done | jq -s '{results: .}' > "$RES/$m.json"
done

fmt() { [ -n "$1" ] && printf '%.1f' "$1" || printf 'n/a'; }
ratio() { if [ -n "$1" ] && [ -n "$2" ]; then awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else printf "n/a" }'; else printf 'n/a'; fi; }
row() { # row LABEL RR CRUN RUNC FLOOR
    printf '%-40s %9s %9s %9s %9s %8s %8s %8s\n' "$1" "$(fmt "$2")" "$(fmt "$3")" "$(fmt "$4")" \
        "$(fmt "$5")" "$(ratio "$2" "$3")" "$(ratio "$2" "$4")" "$(ratio "$2" "$5")"
}
mrow() { row "$1" "$(med_ms "$2" rruntime)" "$(med_ms "$2" crun)" "$(med_ms "$2" runc)" "$(med_ms "$2" floor)"; }
{
    echo "rruntime benchmark, $(date -Is), medians of $RUNS interleaved samples"
    printf '%-40s %9s %9s %9s %9s %8s %8s %8s\n' measurement rruntime crun runc floor rr/crun rr/runc rr/floor
    mrow "run /bin/true (ms)" run
    mrow "create+start+wait+delete (ms)" lifecycle
    mrow "create (ms)" create
    if [ "$SD" = 1 ]; then
        mrow "create, systemd driver (ms)" sdcreate
        mrow "run /bin/true, systemd driver (ms)" sdrun
        mrow "create+start+wait+delete, systemd (ms)" sdlifecycle
    fi
    mrow "$SEQ_N sequential runs, total (ms)" seq
    mrow "$PAR_N runs, $PAR_J parallel, total (ms)" par
    mrow "exec /bin/true (ms)" exec
    row "peak RSS of run (KiB)" "$(med_file "$RES/raw/rss-rruntime.txt")" "$(med_file "$RES/raw/rss-crun.txt")" \
        "$(med_file "$RES/raw/rss-runc.txt")" ""
    row "container cgroup memory at start (KiB)" "$(med_file "$RES/raw/cgmem-rruntime.txt")" \
        "$(med_file "$RES/raw/cgmem-crun.txt")" "$(med_file "$RES/raw/cgmem-runc.txt")" ""
    [ "$SD" = 1 ] || echo "systemd driver rows: n/a ($SD_NA)"
    echo "floor: unshare --fork --pid --mount --uts --ipc --net chroot ROOTFS /bin/true (exec: nsenter into the container)"
    drift=
    for p in rruntime crun runc; do
        ls "$RES/raw/seq/$p"-*.json >/dev/null 2>&1 || continue
        d=$(jq -s 'def med: sort | if length % 2 == 1 then .[length/2|floor] else (.[length/2-1] + .[length/2]) / 2 end;
            [.[].results[].times[]] as $t | ($t | length) as $n | ([([4, ($n/4|floor)] | min), 1] | max) as $k
            | if $n < 2 then empty else (($t[$n-$k:] | med) / ($t[:$k] | med)) end' "$RES/raw/seq/$p"-*.json)
        [ -n "$d" ] && drift="$drift $p $(printf '%.2f' "$d")"
    done
    [ -n "$drift" ] && echo "flatness, $SEQ_N-sequential time of the last samples / the first ones:$drift"
    echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)"
    [ -n "$EXEC_NA" ] && echo "exec n/a for:$EXEC_NA (see exec-na.txt)"
    [ -n "$FAILED" ] && echo "FAILED (not in the table):$FAILED"
    echo "measured in ${ELAPSED}s; raw hyperfine JSON: $RES/raw/<measurement>/<runtime>-<sample>.json;"
    echo "merged per measurement: $RES/<measurement>.json; machine: $RES/machine.txt"
} | tee "$RES/summary.txt"
[ -z "$FAILED" ]
