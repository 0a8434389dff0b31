#!/usr/bin/env bash
# Start a one-node Slurm cluster on 127.0.0.1 (munged, slurmctld, slurmd) for tests/test_slurm.py.
# Idempotent: installs Debian's slurm-wlm and munge if missing, reuses a cluster that already answers.
# Needs root. Every file it writes lies under $HS_SLURM_STATE (default /tmp/hs-slurm), except the link
# /etc/slurm/slurm.conf -> $HS_SLURM_STATE/slurm.conf: Slurm commands inside jobs find their cluster there only
# (the executor plugin's job step drops SLURM_CONF). Stop it with tests/slurm/teardown.sh.
set -euo pipefail

STATE=${HS_SLURM_STATE:-/tmp/hs-slurm}
CONF=$STATE/slurm.conf
SYSTEM_CONF=/etc/slurm/slurm.conf
MUNGE_SOCKET=$STATE/munge/munge.socket.2

node_state() {
    timeout 10 sinfo --noheader --Node --format=%t 2>/dev/null | head -n 1 || true
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@"; do
        if ((SECONDS >= deadline)); then
            echo "setup.sh: timed out waiting for $what; logs in $STATE/log" >&2
            tail -n 20 "$STATE"/log/*.log >&2 || true
            exit 1
        fi
        sleep 0.5
    done
}

node_idle() { [[ $(node_state) == idle ]]; }

if [[ -e $SYSTEM_CONF && $(readlink "$SYSTEM_CONF") != "$CONF" ]]; then
    echo "setup.sh: $SYSTEM_CONF belongs to another Slurm installation; not touching it" >&2
    exit 1
fi

if [[ -f $CONF ]] && node_idle; then
    echo "setup.sh: Slurm already running ($CONF)"
    exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

# A half-started cluster from an earlier run is stopped and its state discarded.
HS_SLURM_STATE=$STATE bash "$(dirname "$0")/teardown.sh"
mkdir -p "$STATE"/{munge,ctld,spool,log}
chmod 700 "$STATE/munge"

dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$STATE/munge/munge.key"
munged --force --socket="$MUNGE_SOCKET" --key-file="$STATE/munge/munge.key" \
    --pid-file="$STATE/munge/munged.pid" --seed-file="$STATE/munge/munged.seed" --log-file="$STATE/log/munged.log"
wait_for 20 munged munge --socket="$MUNGE_SOCKET" --no-input --output=/dev/null

# The node as slurmd sees it (CPUs, sockets, cores, memory), renamed to this host's short name.
HOST=$(hostname -s)
HARDWARE=$(slurmd -C | head -n 1 | sed -E 's/^NodeName=[^ ]+ //')

cat >"$CONF" <<EOF
# One-node test cluster written by tests/slurm/setup.sh; no accounting database, no cgroups.
ClusterName=hstest
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
# Finished jobs stay visible to squeue for an hour: the executor plugin's status command without sacct.
MinJobAge=3600
NodeName=$HOST NodeAddr=127.0.0.1 $HARDWARE State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF

mkdir -p "$(dirname "$SYSTEM_CONF")"
ln -sfn "$CONF" "$SYSTEM_CONF"
slurmctld -f "$CONF"
wait_for 30 slurmctld bash -c 'timeout 5 scontrol ping 2>/dev/null | grep -q UP'
slurmd -f "$CONF"
wait_for 60 "node $HOST to be idle" node_idle
echo "setup.sh: Slurm running ($CONF)"
