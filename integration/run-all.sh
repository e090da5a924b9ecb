#!/bin/bash
# Runs the caller-level scenarios (integration/callers/*.sh) against RUNTIME: containerd/ctr,
# podman (rootful, and rootless as a user the script makes) and Docker, each with its own daemon
# started and stopped by the script.
#
# Usage: integration/run-all.sh RUNTIME_BINARY
#   e.g. integration/run-all.sh target/release/rruntime      (what `make integration` runs)
#        integration/run-all.sh /usr/sbin/runc               (proves the scripts themselves)
# Env:
#   CALLERS="containerd podman podman-rootless docker"  which callers to run (default: all)
#   NO_INSTALL=1       do not apt-get install missing packages
#   CALLER_TIMEOUT=900 seconds one caller script may take
#   VERBOSE=1 ONLY=REGEX KEEP_LOGS=DIR  passed to the scripts (see integration/callers/lib.sh)
#   STRICT=1           known failures (integration/known-failures) count as failures too
# A caller whose tools are missing or whose daemon cannot start here prints a SKIP line and does
# not count as a failure. Exit status: 0 when nothing failed.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
RT=${1:-}
if [ -z "$RT" ]; then
    echo "usage: $0 RUNTIME_BINARY" >&2
    exit 2
fi
case "$RT" in /*) ;; *) RT=$(pwd)/$RT ;; esac
if [ ! -x "$RT" ]; then
    echo "run-all: runtime $RT is not executable (make build?)" >&2
    exit 2
fi
if [ "$(id -u)" != 0 ]; then
    echo "run-all: the caller scenarios need root" >&2
    exit 2
fi
CALLERS=${CALLERS:-containerd podman podman-rootless docker}
# rruntime's scenarios that need pieces not landed yet: XFAIL instead of FAIL (not with STRICT=1;
# other runtimes, e.g. runc, are always strict).
if [ -z "${STRICT:-}" ] && [ "$(basename "$RT")" = rruntime ]; then
    export KNOWN_FAILURES_FILE=${KNOWN_FAILURES_FILE:-$HERE/known-failures}
fi

# Packages each caller needs (Debian 12 names), and the commands that show they are there.
pkgs_for() {
    case "$1" in
        common) echo "busybox-static curl iptables" ;;
        containerd) echo "containerd" ;;
        podman) echo "podman conmon catatonit netavark containernetworking-plugins" ;;
        podman-rootless) echo "podman conmon catatonit uidmap slirp4netns" ;;
        docker) echo "docker.io" ;;
    esac
}

install_missing() {
    [ -n "${NO_INSTALL:-}" ] && return 0
    command -v apt-get >/dev/null || return 0
    local want=() p c
    for c in common $CALLERS; do
        for p in $(pkgs_for "$c"); do
            dpkg -s "$p" >/dev/null 2>&1 || want+=("$p")
        done
    done
    [ ${#want[@]} -eq 0 ] && return 0
    echo "run-all: installing ${want[*]}"
    # Installing docker.io/containerd must not start system-wide daemons: the scripts start
    # their own. A temporary policy-rc.d forbids service starts during the install.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [ ! -e "$policy" ]; then
        # Removed however this ends: left behind, it would block every later service start.
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
        trap 'rm -f /usr/sbin/policy-rc.d; exit 130' INT TERM
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/tmp/run-all-apt.log 2>&1
    apt-get install -y -q --no-install-recommends "${want[@]}" >>/tmp/run-all-apt.log 2>&1 ||
        echo "run-all: apt-get install failed (see /tmp/run-all-apt.log); callers missing tools will be skipped"
    if [ $made_policy = 1 ]; then
        rm -f "$policy"
        trap - EXIT INT TERM
    fi
    return 0
}
install_missing

passed=0 failed=0 skipped=0
summary=()
for c in $CALLERS; do
    script=$HERE/callers/$c.sh
    if [ ! -x "$script" ]; then
        echo "SKIP $c (no script $script)"
        skipped=$((skipped + 1))
        continue
    fi
    echo "=== $c ($RT)"
    log=$(mktemp)
    start=$(date +%s)
    # The grace before KILL outlasts one command of the caller (CMD_TIMEOUT plus its own kill
    # grace) and its cleanup: a caller's TERM trap only runs once its current command ends.
    timeout -k "$((${CMD_TIMEOUT:-60} + 120))" "${CALLER_TIMEOUT:-900}" "$script" "$RT" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    secs=$(($(date +%s) - start))
    line=$(grep -E "^$c: [0-9]+ passed, [0-9]+ failed" "$log" | tail -n 1)
    rm -f "$log"
    if [ "$rc" = 77 ]; then
        skipped=$((skipped + 1))
        summary+=("$c: skipped")
        continue
    fi
    if [ -z "$line" ]; then
        echo "FAIL $c (the script exited $rc without a summary)"
        failed=$((failed + 1))
        summary+=("$c: crashed (exit $rc) after ${secs}s")
        continue
    fi
    p=$(echo "$line" | sed -E 's/^[a-z-]+: ([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
    s=$(echo "$line" | sed -nE 's/.* ([0-9]+) skipped.*/\1/p')
    passed=$((passed + p))
    failed=$((failed + f))
    skipped=$((skipped + ${s:-0}))
    if [ "$f" = 0 ] && [ "$rc" != 0 ]; then
        echo "FAIL $c (the script exited $rc)"
        failed=$((failed + 1))
    fi
    summary+=("$c: $p passed, $f failed in ${secs}s")
done
echo "=== summary for $RT"
for l in "${summary[@]}"; do echo "  $l"; done
echo "integration: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
