#!/bin/bash
# `make test-vm`: the project's tests on a pure cgroup v2 + systemd host (the Debian 12 guest of
# integration/vm/vm.sh, under QEMU/TCG).
#
# Builds the static binary and the test binaries here, boots a guest from the cached image (built
# first if the recipe changed), copies the binaries and what they read (tests/fixtures,
# integration/) into the guest at the same absolute paths, and runs there:
#   suite          every test binary (`cargo test`'s executables) with RRUNTIME_TEST_BIN set
#   callers        integration/run-all.sh with rruntime (containerd, Docker, Podman rootful and
#                  rootless; cgroupfs)
#   callers-systemd the same callers with their systemd cgroup drivers (Docker
#                  native.cgroupdriver=systemd, Podman --cgroup-manager systemd and rootless with
#                  the user's systemd manager, the runc shim's SystemdCgroup = true; the runtime
#                  gets --systemd-cgroup and containers land in transient scopes)
#   callers-runc   the callers step with the guest's runc (proves the scripts; not a default step)
#   callers-systemd-runc  the callers-systemd step with the guest's runc (not a default step)
#   demo           integration/demo.sh
#   bench          integration/bench/bench.sh (only when asked: VM_STEPS=bench, `make bench-vm`)
# Logs go to $VM_RESULTS (default target/test-vm); the guest is stopped by its PID on every exit.
# Prints how long each step took. Exit status 0 only when every step passed.
#
# Env:
#   VM_STEPS="suite callers callers-systemd demo"   steps to run, in this order (default)
#   VM_TESTS=REGEX        only the test binaries whose name matches (e.g. 'cgroups|lifecycle')
#   VM_TEST_THREADS=4     --test-threads for each test binary in the guest
#   VM_TEST_TIMEOUT=1500  seconds one test binary may take in the guest
#   VM_CALLER_TIMEOUT=1800 seconds one run-all.sh may take in the guest
#   VM_CALLERS=           the callers the callers* steps run (default: all; e.g. "containerd")
#   VM_BENCH_ARGS=        arguments for bench.sh (default: a full run)
#   VM_NAME, VM_DIR, VM_MEM, VM_CPUS, VM_BOOT_TIMEOUT, VM_CGROUP (v2|hybrid|v1): see vm.sh
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"
VM=$HERE/vm.sh
export VM_NAME=${VM_NAME:-test-vm-$$}
STEPS=${VM_STEPS:-suite callers callers-systemd demo}
THREADS=${VM_TEST_THREADS:-4}
TEST_TIMEOUT=${VM_TEST_TIMEOUT:-1500}
CALLER_TIMEOUT=${VM_CALLER_TIMEOUT:-1800}
RES=${VM_RESULTS:-$ROOT/target/test-vm}
TARGET=x86_64-unknown-linux-gnu
BIN=$ROOT/target/$TARGET/release/rruntime

die() {
    echo "test-vm: $*" >&2
    exit 1
}
[ "$(id -u)" = 0 ] || die "needs root (the image build and the tests)"
command -v jq >/dev/null || die "jq not found (apt-get install jq)"

rm -rf "$RES"
mkdir -p "$RES"
TIMES=()
FAILS=()
STARTED_GUEST=0
T_ALL=$SECONDS

step_done() {
    # step_done NAME START RESULT
    TIMES+=("$(printf '%-22s %6ss  %s' "$1" "$(($SECONDS - $2))" "$3")")
    echo "test-vm: step $1: $3 ($(($SECONDS - $2)) s)"
}

summary() {
    echo
    echo "=== test-vm summary (results in $RES)"
    local l
    for l in "${TIMES[@]}"; do echo "  $l"; done
    echo "  total                  $((SECONDS - T_ALL))s"
    if [ ${#FAILS[@]} -gt 0 ]; then
        echo "  FAILED:"
        for l in "${FAILS[@]}"; do echo "    $l"; done
    fi
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local j
    for j in $(jobs -p); do kill "$j" 2>/dev/null; done
    if [ $STARTED_GUEST = 1 ]; then
        "$VM" console >"$RES/console.log" 2>/dev/null || true
        "$VM" stop || true
    fi
    rm -f "$RES/payload.ext4"
    summary | tee "$RES/summary.txt"
    if [ $rc = 0 ] && [ ${#FAILS[@]} -gt 0 ]; then rc=1; fi
    exit $rc
}
trap cleanup EXIT
trap 'FAILS+=("interrupted"); exit 130' INT
trap 'FAILS+=("terminated"); exit 143' TERM

# --- host: image and binaries ---------------------------------------------------------------
t=$SECONDS
"$VM" build || { FAILS+=("image build"); step_done image $t FAIL; exit 1; }
step_done image $t ok

t=$SECONDS
if ! make build >"$RES/build.log" 2>&1; then
    tail -n 30 "$RES/build.log" >&2
    FAILS+=("host build")
    step_done build $t FAIL
    exit 1
fi
: >"$RES/test-binaries.txt"
if [[ " $STEPS " == *" suite "* ]]; then
    if ! cargo test --profile ci --no-run --message-format=json >"$RES/cargo-test.json" 2>>"$RES/build.log"; then
        tail -n 30 "$RES/build.log" >&2
        FAILS+=("host build of the tests")
        step_done build $t FAIL
        exit 1
    fi
    # name<TAB>executable for every test target (unit tests of the lib and bin, tests/*.rs).
    jq -r 'select(.reason == "compiler-artifact" and .profile.test == true and .executable != null)
           | "\(.target.name):\(.target.kind[0])\t\(.executable)"' "$RES/cargo-test.json" |
        sed -E 's/:test\t/\t/' | sort >"$RES/test-binaries.txt"
    [ -s "$RES/test-binaries.txt" ] || { FAILS+=("no test binaries found"); exit 1; }
fi
step_done build $t "ok ($(wc -l <"$RES/test-binaries.txt") test binaries)"

# --- payload: the binaries and what they read, on a disk of their own ------------------------
# Same absolute paths as here (the tests read env!("CARGO_MANIFEST_DIR")/tests/fixtures): the disk
# holds a subset of this checkout and the guest mounts it on $ROOT. Copying ~250 MB over ssh into
# an emulated guest takes minutes; a second virtio disk takes seconds.
t=$SECONDS
STAGE=$RES/payload
rm -rf "$STAGE"
mkdir -p "$STAGE"
stage() {
    # stage PATH-UNDER-ROOT...: hard links where possible (same file system), else copies.
    local f
    for f in "$@"; do
        mkdir -p "$STAGE/$(dirname "$f")"
        cp -al "$ROOT/$f" "$STAGE/$f" 2>/dev/null || cp -a "$ROOT/$f" "$STAGE/$f" || return 1
    done
}
payload_ok=1
stage "target/$TARGET/release/rruntime" target/release/rruntime tests/fixtures integration || payload_ok=0
while IFS=$'\t' read -r _ exe; do
    case "$exe" in
        "$ROOT"/*) stage "${exe#"$ROOT"/}" || payload_ok=0 ;;
        *) FAILS+=("test binary $exe is outside $ROOT (CARGO_TARGET_DIR?)"); payload_ok=0 ;;
    esac
done <"$RES/test-binaries.txt"
PAYLOAD=$RES/payload.ext4
if [ $payload_ok = 1 ]; then
    mb=$(du -sm "$STAGE" | cut -f1)
    rm -f "$PAYLOAD"
    truncate -s $((mb * 13 / 10 + 128))M "$PAYLOAD"
    mkfs.ext4 -q -F -L rruntime-payload -d "$STAGE" "$PAYLOAD" >"$RES/mkfs.log" 2>&1 || payload_ok=0
fi
rm -rf "$STAGE"
[ $payload_ok = 1 ] || { FAILS+=("making the payload disk"); step_done payload $t FAIL; exit 1; }
step_done payload $t "ok (${mb} MB)"

# --- guest ----------------------------------------------------------------------------------
t=$SECONDS
STARTED_GUEST=1
VM_DISK2=$PAYLOAD "$VM" start & wait $! || { FAILS+=("guest did not come up"); step_done boot $t FAIL; exit 1; }
step_done boot $t ok
"$VM" ssh "mkdir -p '$ROOT' && mount /dev/vdb '$ROOT' && echo \"guest: \$(uname -r), \$(systemctl --version | head -1), cgroup fs \$(stat -fc %T /sys/fs/cgroup)\"" |
    tee "$RES/guest.txt"
grep -q '^guest: ' "$RES/guest.txt" || { FAILS+=("mounting the payload in the guest"); exit 1; }

# g CMD: runs CMD in the guest's copy of the repository, bounded by timeout.
g() {
    local secs=$1
    shift
    # In the background + wait: a signal to this script is handled at once, not when ssh ends.
    timeout -k 30 $((secs + 60)) "$VM" ssh "cd '$ROOT' && timeout -k 30 $secs bash -c $(printf '%q' "$*")" </dev/null &
    wait $!
}

run_suite() {
    local t=$SECONDS name exe log line passed=0 failed=0 ignored=0 bad=0 tb
    while IFS=$'\t' read -r name exe; do
        if [ -n "${VM_TESTS:-}" ] && ! echo "$name" | grep -Eq "$VM_TESTS"; then continue; fi
        log=$RES/suite/$name.log
        mkdir -p "$RES/suite"
        tb=$SECONDS
        g "$TEST_TIMEOUT" "RRUNTIME_TEST_BIN='$BIN' '$exe' --test-threads=$THREADS" >"$log" 2>&1
        local rc=$?
        line=$(grep -E '^test result: ' "$log" | tail -n 1)
        printf '  %-28s %5ss  rc=%-3s %s\n' "$name" "$((SECONDS - tb))" "$rc" "${line#test result: }" | tee -a "$RES/suite.txt"
        if [ -z "$line" ]; then
            bad=$((bad + 1))
            FAILS+=("suite $name: no result (exit $rc; timeout is ${TEST_TIMEOUT}s) - $log")
            continue
        fi
        passed=$((passed + $(echo "$line" | sed -E 's/.* ([0-9]+) passed.*/\1/')))
        failed=$((failed + $(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')))
        ignored=$((ignored + $(echo "$line" | sed -E 's/.* ([0-9]+) ignored.*/\1/')))
        local f
        for f in $(sed -nE 's/^test (.*) \.\.\. FAILED$/\1/p' "$log"); do
            FAILS+=("suite $name: $f")
        done
        if [ "$rc" != 0 ] && ! grep -q ' FAILED$' "$log"; then
            FAILS+=("suite $name: exit $rc - $log")
        fi
    done <"$RES/test-binaries.txt"
    local skips
    skips=$(cat "$RES"/suite/*.log 2>/dev/null | grep -c '^SKIP' || true)
    step_done suite $t "$passed passed, $failed failed, $ignored ignored, $bad binaries without a result, $skips SKIP lines"
}

run_callers() {
    # run_callers STEP RUNTIME [ENV...]   (ENV: extra VAR=value words for run-all.sh)
    local t=$SECONDS step=$1 rt=$2 log=$RES/$1.log
    shift 2
    g "$CALLER_TIMEOUT" "$* NO_INSTALL=1 KEEP_LOGS=/root/results/$step integration/run-all.sh '$rt'" >"$log" 2>&1
    local rc=$?
    "$VM" scp ":/root/results/$step" "$RES/$step-logs" >/dev/null 2>&1 || true
    local line
    line=$(grep -E '^integration: ' "$log" | tail -n 1)
    grep -E '^(FAIL|XFAIL|SKIP) ' "$log" | sed "s/^/  $step: /" >>"$RES/callers-failures.txt" || true
    if [ "$rc" != 0 ] || [ -z "$line" ]; then
        local f
        while read -r f; do FAILS+=("$step: $f"); done < <(grep -E '^FAIL ' "$log")
        [ -z "$line" ] && FAILS+=("$step: no summary (exit $rc) - $log")
        step_done "$step" $t "FAIL: ${line:-exit $rc}"
    else
        step_done "$step" $t "ok: $line"
    fi
}

run_demo() {
    local t=$SECONDS
    if g 600 "integration/demo.sh target/release/rruntime /tmp/demo-bundle" >"$RES/demo.log" 2>&1 &&
        grep -q 'container exited with status 0' "$RES/demo.log"; then
        step_done demo $t ok
    else
        FAILS+=("demo - $RES/demo.log")
        step_done demo $t FAIL
    fi
}

run_bench() {
    local t=$SECONDS
    # shellcheck disable=SC2086
    if g 7200 "integration/bench/bench.sh -o /root/results/bench ${VM_BENCH_ARGS:-} target/release/rruntime" >"$RES/bench.log" 2>&1; then
        step_done bench $t ok
    else
        FAILS+=("bench - $RES/bench.log")
        step_done bench $t FAIL
    fi
    "$VM" scp ":/root/results/bench" "$RES/bench" >/dev/null 2>&1 || true
}

CALLERS_ENV=()
[ -n "${VM_CALLERS:-}" ] && CALLERS_ENV=("CALLERS=$(printf '%q' "$VM_CALLERS")")
for s in $STEPS; do
    case "$s" in
        suite) run_suite ;;
        callers) run_callers callers target/release/rruntime "${CALLERS_ENV[@]}" ;;
        callers-systemd) run_callers callers-systemd target/release/rruntime CGROUP_DRIVER=systemd "${CALLERS_ENV[@]}" ;;
        callers-runc) run_callers callers-runc /usr/sbin/runc "${CALLERS_ENV[@]}" ;;
        callers-systemd-runc) run_callers callers-systemd-runc /usr/sbin/runc CGROUP_DRIVER=systemd "${CALLERS_ENV[@]}" ;;
        demo) run_demo ;;
        bench) run_bench ;;
        *) FAILS+=("unknown step $s") ;;
    esac
done
