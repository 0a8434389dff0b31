#!/usr/bin/env bash
# Stop the test cluster of tests/slurm/setup.sh: cancel its jobs, stop slurmd, slurmctld and munged by their
# pid files, delete its state directory and the /etc/slurm/slurm.conf link to it. Safe when nothing runs.
set -uo pipefail

STATE=${HS_SLURM_STATE:-/tmp/hs-slurm}
SYSTEM_CONF=/etc/slurm/slurm.conf

stop() {  # stop PIDFILE: TERM the daemon it names, KILL it after 10 s
    local pidfile=$1 pid
    [[ -f $pidfile ]] || return 0
    pid=$(<"$pidfile")
    if [[ $pid =~ ^[0-9]+$ ]] && kill -TERM "$pid" 2>/dev/null; then
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$pidfile"
}

if [[ -f $STATE/slurmctld.pid ]]; then
    SLURM_CONF=$STATE/slurm.conf timeout 10 scancel --user="$(id -un)" 2>/dev/null
fi
stop "$STATE/slurmd.pid"
stop "$STATE/slurmctld.pid"
stop "$STATE/munge/munged.pid"
if [[ $(readlink "$SYSTEM_CONF") == "$STATE/slurm.conf" ]]; then
    rm -f "$SYSTEM_CONF"
fi
rm -rf "$STATE"
