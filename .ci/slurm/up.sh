#!/usr/bin/env bash
# A real single-node SLURM (Debian's 22.05) for CI, started without systemd:
# munge, MariaDB + slurmdbd (so that sacct works, the plugin's default status path), slurmctld, slurmd,
# with two fake GPUs (gres with File=/dev/null and /dev/zero) so that GPU requests are scheduled, recorded and
# run concurrently on different devices.
# Usage: .ci/slurm/up.sh [STATE_DIR]   (default /tmp/slurm-ci); .ci/slurm/down.sh [STATE_DIR] stops it by pid.
# Needs root (it installs packages when they are missing and runs the daemons as root).
set -euo pipefail

S=${1:-/tmp/slurm-ci}
HOST=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 2048 ))

need=()
for b in slurmctld slurmd slurmdbd sbatch munged mariadbd; do command -v "$b" >/dev/null || need+=("$b"); done
if ((${#need[@]})); then
  echo "installing SLURM, munge, MariaDB (missing: ${need[*]})"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    slurmctld slurmd slurm-client slurmdbd munge mariadb-server >"$S.apt.log" 2>&1 \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
         slurmctld slurmd slurm-client slurmdbd munge mariadb-server >"$S.apt.log" 2>&1; }
fi

mkdir -p "$S"/{etc,state,spool,log,run,db,munge} /run/munge
chmod 700 "$S/munge"

# --- munge, on its default socket (every SLURM component and client looks there) --------------------------------
[[ -s /etc/munge/munge.key ]] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; }
chmod 400 /etc/munge/munge.key
munged --force --pid-file="$S/run/munged.pid" --log-file="$S/log/munged.log" --seed-file="$S/munge/seed"

# --- MariaDB for accounting -------------------------------------------------------------------------------------
if [[ ! -d "$S/db/mysql" ]]; then
  mariadb-install-db --user=root --datadir="$S/db" --auth-root-authentication-method=socket >"$S/log/mariadb-install.log" 2>&1
fi
mariadbd --user=root --datadir="$S/db" --socket="$S/run/mysql.sock" --pid-file="$S/run/mariadbd.pid" \
  --skip-networking=0 --bind-address=127.0.0.1 --port=3307 --log-error="$S/log/mariadb.log" </dev/null >/dev/null 2>&1 &
disown
for _ in $(seq 60); do mariadb --socket="$S/run/mysql.sock" -e 'select 1' >/dev/null 2>&1 && break; sleep 0.5; done
mariadb --socket="$S/run/mysql.sock" -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
  CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'ci-only';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"

# --- configuration --------------------------------------------------------------------------------------------
cat >"$S/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3307
StorageUser=slurm
StoragePass=ci-only
StorageLoc=slurm_acct_db
PidFile=$S/run/slurmdbd.pid
LogFile=$S/log/slurmdbd.log
EOF
chmod 600 "$S/etc/slurmdbd.conf"

cat >"$S/etc/slurm.conf" <<EOF
ClusterName=ci
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/run/slurmctld.pid
SlurmdPidFile=$S/run/slurmd.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
# no cgroups here: linuxproc tracking, affinity binding; memory is enforced by the accounting poller
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=2
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
MinJobAge=600
ReturnToService=2
SchedulerType=sched/backfill
MpiDefault=none
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:2 State=UNKNOWN
PartitionName=ci Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
# two fake GPUs: a gres needs a File= (a device file, one per GPU), or slurmd reports fewer GPUs than configured
# and the node drains
printf 'NodeName=%s Name=gpu File=/dev/null\nNodeName=%s Name=gpu File=/dev/zero\n' "$HOST" "$HOST" >"$S/etc/gres.conf"
cp "$S/etc/slurm.conf" "$S/etc/gres.conf" /etc/slurm/
cp "$S/etc/slurmdbd.conf" /etc/slurm/ && chmod 600 /etc/slurm/slurmdbd.conf
export SLURM_CONF=/etc/slurm/slurm.conf

# --- daemons --------------------------------------------------------------------------------------------------
slurmdbd
for _ in $(seq 60); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.5; done
sacctmgr -n list cluster format=cluster | grep -qw ci || sacctmgr -i add cluster ci >/dev/null
slurmctld
slurmd
for _ in $(seq 120); do
  state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null || true)
  [[ "$state" == idle* ]] && break
  sleep 0.5
done
[[ "$state" == idle* ]] || { echo "SLURM node is '$state', not idle"; tail -20 "$S"/log/*.log; exit 1; }
echo "SLURM up: node $HOST idle ($CPUS CPUs, $MEM_MB MB, 2 fake GPUs); state in $S"
