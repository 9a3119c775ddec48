#!/usr/bin/env bash
# A real one-node Slurm on localhost (munged, slurmctld, slurmd) for the tests of
# `--launcher slurm`. Idempotent: a Slurm that already answers is left as it is.
#
#   .ci/slurm.sh              install slurm-wlm and munge if missing (root with apt), start
#   .ci/slurm.sh --no-install start only what is installed (what the test fixture calls)
#
# On success prints the partition's name on stdout and exits 0; otherwise one line saying why
# on stderr and exit 1 (the tests then skip with that line).
set -uo pipefail

PARTITION=${HAMIXER_SLURM_PARTITION:-debug}
CONF=/etc/slurm/slurm.conf
MARK="# hamixer test cluster"

fail() { echo "$*" >&2; exit 1; }

answers() {  # the controller answers and this node takes jobs
    timeout 10 sinfo -h -p "$PARTITION" -o "%t" 2>/dev/null | grep -qE "^(idle|mix|alloc)"
}

# every core of the machine (nproc alone obeys OMP_NUM_THREADS, which the tests set to 1)
CPUS=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
if [ -f "$CONF" ] && grep -q "$MARK" "$CONF" && grep -q " CPUs=$CPUS " "$CONF" && answers; then
    echo "$PARTITION"; exit 0
fi
[ "$(id -u)" = 0 ] || fail "a local Slurm needs root to start (slurmctld, slurmd, munged)"

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    [ "${1:-}" = "--no-install" ] && fail "slurm-wlm and munge are not installed (.ci/slurm.sh installs them)"
    command -v apt-get >/dev/null || fail "no apt-get to install slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -q && apt-get install -y -q slurm-wlm munge; } >/tmp/hamixer-slurm-apt.log 2>&1 \
        || fail "apt-get install slurm-wlm munge failed (see /tmp/hamixer-slurm-apt.log)"
fi
if [ -f "$CONF" ] && ! grep -q "$MARK" "$CONF"; then
    fail "$CONF exists and is not this script's: a configured Slurm is left alone"
fi

# munge: the key the daemons authenticate with
mkdir -p /etc/munge /var/log/munge /run/munge /var/lib/munge
[ -s /etc/munge/munge.key ] || mungekey --create --keyfile /etc/munge/munge.key >/dev/null 2>&1 \
    || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
chown -R munge:munge /etc/munge /var/log/munge /run/munge /var/lib/munge
chmod 0400 /etc/munge/munge.key
chmod 0711 /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- munged --force >/dev/null 2>&1 || fail "munged does not start"
    for _ in $(seq 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
fi

HOST=$(hostname -s)
MEM_MB=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat >"$CONF" <<EOF
$MARK: one node on localhost, written by .ci/slurm.sh
ClusterName=hamixer-test
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobRequeue=1
KillWait=20
MinJobAge=600
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF

# (re)start the daemons with this configuration
for daemon in slurmctld slurmd; do
    pid=$(cat "/run/$daemon.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    fi
done
slurmctld -c -i >/dev/null 2>&1 || fail "slurmctld does not start (see /var/log/slurm/slurmctld.log)"
slurmd >/dev/null 2>&1 || fail "slurmd does not start (see /var/log/slurm/slurmd.log)"
for _ in $(seq 60); do
    if answers; then echo "$PARTITION"; exit 0; fi
    scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
    sleep 1
done
fail "Slurm started but node $HOST takes no jobs (see /var/log/slurm/slurmd.log)"
