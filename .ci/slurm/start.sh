#!/usr/bin/env bash
# Start a real single-node SLURM cluster with accounting on this machine (for CI):
#   munged -> MariaDB -> slurmdbd -> (sacctmgr: cluster, account, user) -> slurmctld -> slurmd
# then run smoke jobs. Installs the Debian packages it needs. Must run as root. Idempotent: a
# second run finds everything running and only re-checks it (daemons whose configuration changed
# are restarted). Stop everything with stop.sh. Details: README.md next to this file.
#
# Environment (all optional):
#   SLURM_CI_SMOKE=0          skip the smoke jobs at the end
#   SLURM_CI_CPUS=N           CPUs the node advertises (default: the machine's); more than the
#                             machine has lets jobs that ask for many threads run (oversubscribed)
#   SLURM_CI_MEM_MB=N         memory the node advertises in MB (default: machine's minus 10%)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$HERE/lib.sh"

CLUSTER=discover            # ClusterName and the name registered in slurmdbd
ACCOUNT=discover            # account (default account of root) registered in slurmdbd
NODE=localnode              # fixed NodeName: the host name may not resolve, slurmd runs with -N
PARTITIONS="main gpu"       # both on $NODE; main is the default
ETC=/etc/slurm              # Debian's compiled-in config dir: no SLURM_CONF needed by callers
SPOOL=/var/lib/slurm
DB_NAME=slurm_acct_db
DB_USER=slurm
PACKAGES=(slurm-wlm munge slurmdbd mariadb-server)
T0=$SECONDS

# ---------------------------------------------------------------------------------------------
# Failure reporting: name the failed step and show the end of the relevant daemon logs
# (all of them when the caller names none).
ALL_LOGS=(munged mariadbd slurmdbd slurmctld slurmd)
logs_of() { # logs_of DAEMON...: the log files of these daemons
    local d
    for d in "$@"; do
        case $d in
        -) ;;
        /*) echo "$d" ;; # a file
        munged) echo "$LOG_DIR/munged.log" ;;
        mariadbd) echo "$LOG_DIR/mariadb.log" ;;
        *) echo "$LOG_DIR/$d.log $LOG_DIR/$d.stderr.log" ;;
        esac
    done
}
show_logs() { # show_logs DAEMON-OR-FILE...
    local f n
    for f in $(logs_of "$@"); do
        [[ -s $f ]] || continue
        n=25
        [[ $f != *.stderr.log ]] || n=8 # stderr repeats the log file; it matters before that opens
        echo "----- tail -n $n $f" >&2
        tail -n "$n" "$f" >&2 || true
    done
}
die() { # die MESSAGE [DAEMON-OR-FILE... | -]   ("-": no logs; none given: all logs)
    echo "slurm-ci: ERROR: $1" >&2
    shift
    if (($#)); then show_logs "$@"; else show_logs "${ALL_LOGS[@]}"; fi
    exit 1
}
# shellcheck disable=SC2154  # rc is assigned inside the trap
trap 'rc=$?; echo "slurm-ci: ERROR: command failed (exit $rc) at start.sh line $LINENO: $BASH_COMMAND" >&2; show_logs "${ALL_LOGS[@]}"; exit $rc' ERR

# wait_for SECONDS DESCRIPTION CMD...: poll CMD every 0.5 s until it succeeds; fail after SECONDS.
wait_for() {
    local secs=$1 what=$2 deadline
    shift 2
    deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
    log "$what: ok ($((secs - deadline + SECONDS))s)"
}

# start_daemon NAME LOGFILE CMD...: run CMD (a foreground daemon) in its own session, detached
# from our stdin/stdout/stderr (so callers capturing our output do not wait for the daemons),
# and record its PID for stop.sh. `setsid` execs CMD directly here (a background job of a
# non-interactive shell is no process-group leader), so $! is the daemon itself.
start_daemon() {
    local name=$1 out=$2
    shift 2
    log "starting $name"
    setsid "$@" </dev/null >>"$out" 2>&1 &
    echo $! >"$STATE_DIR/$name.pid"
    sleep 0.3
    our_pid "$name" >/dev/null || die "$name exited right after start" "$name"
}

# write_file PATH MODE OWNER: write stdin to PATH if the content differs; sets CHANGED=1 then.
write_file() {
    local path=$1 mode=$2 owner=$3 tmp
    tmp=$(mktemp "$path.XXXXXX")
    cat >"$tmp"
    chmod "$mode" "$tmp"
    chown "$owner" "$tmp"
    if [[ -f $path ]] && cmp -s "$tmp" "$path" &&
        [[ $(stat -c %a:%U "$path") == "${mode#0}:${owner%%:*}" ]]; then
        rm -f "$tmp"
        return 0
    fi
    mv -f "$tmp" "$path"
    CHANGED=1
    log "wrote $path"
}

[[ $EUID -eq 0 ]] || die "start.sh must run as root" -

# ---------------------------------------------------------------------------------------------
# 1. Packages (Debian 12: slurm-wlm 22.05, munge 0.5.15, MariaDB 10.11).
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    t=$SECONDS
    # Package scripts must not start services themselves (no systemd here; we start the
    # daemons below and record their PIDs). Docker-style images already ship a policy-rc.d
    # that says so; add a temporary one otherwise.
    own_policy=
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    APT_LOG=/tmp/discover-slurm-apt.log
    rc=0
    # DPkg::Lock::Timeout: wait for another apt/dpkg (e.g. unattended-upgrades at boot).
    { timeout 300 apt-get -o DPkg::Lock::Timeout=120 update -qq &&
        DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq \
            --no-install-recommends -o DPkg::Lock::Timeout=120 \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            "${PACKAGES[@]}"; } >"$APT_LOG" 2>&1 || rc=$?
    [[ -z $own_policy ]] || rm -f /usr/sbin/policy-rc.d
    ((rc == 0)) || die "apt-get update/install failed (exit $rc)" "$APT_LOG"
    log "packages installed ($((SECONDS - t))s)"
fi
for u in slurm munge mysql; do
    id "$u" >/dev/null 2>&1 || die "system user $u missing after package installation" -
done

install -d -m 0755 "$STATE_DIR"
install -d -m 0755 -o slurm -g slurm "$LOG_DIR" /run/slurm "$SPOOL" "$SPOOL/slurmctld"
install -d -m 0755 -o root -g root "$SPOOL/slurmd" "$ETC"

# ---------------------------------------------------------------------------------------------
# 2. munge: authentication between all SLURM commands and daemons.
install -d -m 0700 -o munge -g munge /etc/munge /var/lib/munge /var/log/munge
install -d -m 0755 -o munge -g munge /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating /etc/munge/munge.key"
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
munge_ok() { timeout 5 munge -n | timeout 5 unmunge; }
if ! our_pid munged >/dev/null && ! munge_ok >/dev/null 2>&1; then
    start_daemon munged "$LOG_DIR/munged.log" \
        setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground
fi
wait_for 20 "munge credential round trip" munge_ok || die "munged does not answer" munged

# ---------------------------------------------------------------------------------------------
# 3. MariaDB, started directly (no systemd). Reuse a server that already answers on the socket.
SOCK=/run/mysqld/mysqld.sock
install -d -m 0755 -o mysql -g mysql /run/mysqld
db_ok() { timeout 5 mariadb-admin --socket="$SOCK" ping; }
if ! our_pid mariadbd >/dev/null && ! db_ok >/dev/null 2>&1; then
    if [[ ! -d /var/lib/mysql/mysql ]]; then
        log "initialising /var/lib/mysql"
        timeout 120 mariadb-install-db --user=mysql --datadir=/var/lib/mysql \
            --auth-root-authentication-method=socket --skip-test-db \
            >>"$LOG_DIR/mariadb.log" 2>&1 || die "mariadb-install-db failed" mariadbd
    fi
    # InnoDB settings recommended by the slurmdbd documentation; errors go to stderr = our log.
    start_daemon mariadbd "$LOG_DIR/mariadb.log" \
        /usr/sbin/mariadbd --user=mysql --datadir=/var/lib/mysql --socket="$SOCK" \
        --pid-file=/run/mysqld/mysqld.pid --bind-address=127.0.0.1 \
        --innodb-buffer-pool-size=256M --innodb-lock-wait-timeout=900
fi
wait_for 60 "MariaDB ping" db_ok || die "MariaDB does not answer on $SOCK" mariadbd

# slurmdbd's database password: generated once, kept in slurmdbd.conf (mode 0600).
DB_PASS=
if [[ -f $ETC/slurmdbd.conf ]]; then
    DB_PASS=$(sed -n 's/^StoragePass=//p' "$ETC/slurmdbd.conf")
fi
[[ -n $DB_PASS ]] || DB_PASS=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
timeout 30 mariadb --socket="$SOCK" -u root <<SQL || die "creating the accounting database failed" mariadbd
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL PRIVILEGES ON $DB_NAME.* TO '$DB_USER'@'localhost';
FLUSH PRIVILEGES;
SQL

# ---------------------------------------------------------------------------------------------
# 4. Configuration files.
HOST=$(hostname -s)
# Hardware as slurmd sees it: "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2
# ThreadsPerCore=1 RealMemory=24105". The topology is copied so that slurmd does not report a
# mismatch; RealMemory keeps 10% (at least 512 MB) for the OS and the daemons. Both can be
# overridden (SLURM_CI_CPUS, SLURM_CI_MEM_MB; see the top).
HW=$(timeout 20 slurmd -C | head -n 1) || die "slurmd -C failed" slurmd
hw() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" <<<"$HW"; }
CPUS=$(hw CPUs) SOCKETS=$(hw SocketsPerBoard) CORES=$(hw CoresPerSocket) THREADS=$(hw ThreadsPerCore)
MEM_TOTAL=$(hw RealMemory)
[[ -n $CPUS && -n $SOCKETS && -n $CORES && -n $THREADS && -n $MEM_TOTAL ]] ||
    die "cannot parse 'slurmd -C': $HW"
HEADROOM=$((MEM_TOTAL / 10 > 512 ? MEM_TOTAL / 10 : 512))
MEM=$((MEM_TOTAL - HEADROOM))
if [[ -n ${SLURM_CI_CPUS:-} && ${SLURM_CI_CPUS} != "$CPUS" ]]; then
    [[ $SLURM_CI_CPUS =~ ^[1-9][0-9]*$ ]] || die "SLURM_CI_CPUS must be a positive integer" -
    CPUS=$SLURM_CI_CPUS SOCKETS=1 CORES=$SLURM_CI_CPUS THREADS=1
fi
if [[ -n ${SLURM_CI_MEM_MB:-} ]]; then
    [[ $SLURM_CI_MEM_MB =~ ^[1-9][0-9]*$ ]] || die "SLURM_CI_MEM_MB must be a positive integer" -
    MEM=$SLURM_CI_MEM_MB
fi
# Jobs without --mem get this much per CPU (without it a job is given the whole node's memory
# and blocks every other job); capped so that all CPUs can be used at once.
DEF_MEM=$((MEM / CPUS < 1024 ? MEM / CPUS : 1024))

CHANGED=0
write_file "$ETC/slurmdbd.conf" 0600 slurm:slurm <<EOF
# Generated by .ci/slurm/start.sh - single-node CI cluster. Do not edit.
AuthType=auth/munge
# "localhost" is accepted whatever the host name is.
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=slurm
PidFile=/run/slurm/slurmdbd.pid
LogFile=$LOG_DIR/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=$DB_NAME
EOF
DBD_CHANGED=$CHANGED

CHANGED=0
write_file "$ETC/slurm.conf" 0644 root:root <<EOF
# Generated by .ci/slurm/start.sh - single-node CI cluster. Do not edit.
ClusterName=$CLUSTER
# slurmctld only runs on a host named in SlurmctldHost; the address avoids name resolution.
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true

StateSaveLocation=$SPOOL/slurmctld
SlurmdSpoolDir=$SPOOL/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info

# No cgroups in this container: track processes through /proc, no task binding/containment.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30

# Accounting through slurmdbd (sacct, sacctmgr), with GPU usage as a tracked resource.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
AccountingStorageTRES=gres/gpu,gres/gpu:fake
# Keep --comment (snakemake-executor-plugin-slurm puts the rule name there) for sacct -o Comment.
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none

# The node is what slurm.conf says even where that is more than the hardware (SLURM_CI_CPUS /
# SLURM_CI_MEM_MB); without this slurmd's registration would drain such a node.
SlurmdParameters=config_overrides
# Reject at submission a job that can never run here (more CPUs/memory/GPUs than the node has,
# longer than MaxTime) instead of leaving it PENDING (Reason=PartitionConfig) for ever.
EnforcePartLimits=ALL

# Cores and memory are consumable, so several jobs share the node; --gpus needs cons_tres.
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$DEF_MEM

# A node that was down (e.g. slurmd restarted) returns to service by itself.
ReturnToService=2
KillWait=10
InactiveLimit=0
# Finished jobs stay visible in squeue/scontrol for 5 minutes (sacct keeps them for good).
MinJobAge=300

# One fake GPU of model "fake" (see gres.conf): lets --gpus=1, --gpus=fake:1 and --gres=gpu:1
# jobs be scheduled and run, and accounting records the model (gres/gpu:fake).
GresTypes=gpu

NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$HOST Sockets=$SOCKETS CoresPerSocket=$CORES ThreadsPerCore=$THREADS RealMemory=$MEM Gres=gpu:fake:1 State=UNKNOWN
PartitionName=main Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE Default=NO MaxTime=INFINITE State=UP
EOF
write_file "$ETC/gres.conf" 0644 root:root <<EOF
# Generated by .ci/slurm/start.sh. A fake GPU: no real device; /dev/null stands in for it.
NodeName=$NODE Name=gpu Type=fake File=/dev/null
EOF
SLURM_CHANGED=$CHANGED

# ---------------------------------------------------------------------------------------------
# 5. slurmdbd, then the accounting entities (cluster, account, user root).
if ((DBD_CHANGED)); then stop_daemon slurmdbd; fi
if ((SLURM_CHANGED)); then
    stop_daemon slurmd
    stop_daemon slurmctld
fi
dbd_ok() { timeout 10 sacctmgr -n -P show cluster format=cluster; }
if ! our_pid slurmdbd >/dev/null; then
    touch "$LOG_DIR/slurmdbd.log" && chown slurm:slurm "$LOG_DIR/slurmdbd.log"
    start_daemon slurmdbd "$LOG_DIR/slurmdbd.stderr.log" /usr/sbin/slurmdbd -D
fi
wait_for 90 "slurmdbd answers sacctmgr" dbd_ok || die "slurmdbd does not answer" slurmdbd

exists() { [[ -n $(timeout 10 sacctmgr -n -P show "$@" 2>/dev/null) ]]; }
if ! exists cluster "$CLUSTER" format=cluster; then
    timeout 30 sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "sacctmgr add cluster failed" slurmdbd
fi
if ! exists account "$ACCOUNT" format=account; then
    timeout 30 sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" \
        Description="CI account" Organization=discover >/dev/null || die "sacctmgr add account failed" slurmdbd
fi
if ! exists association cluster="$CLUSTER" account="$ACCOUNT" user=root format=user; then
    timeout 30 sacctmgr -i add user root Cluster="$CLUSTER" Account="$ACCOUNT" \
        DefaultAccount="$ACCOUNT" >/dev/null || die "sacctmgr add user failed" slurmdbd
fi
log "accounting: cluster $CLUSTER, account $ACCOUNT, user root"

# ---------------------------------------------------------------------------------------------
# 6. slurmctld and slurmd; wait until the node is idle.
if ! our_pid slurmctld >/dev/null; then
    touch "$LOG_DIR/slurmctld.log" && chown slurm:slurm "$LOG_DIR/slurmctld.log"
    start_daemon slurmctld "$LOG_DIR/slurmctld.stderr.log" /usr/sbin/slurmctld -D
fi
wait_for 60 "slurmctld answers" timeout 5 scontrol ping || die "slurmctld does not answer" slurmctld
SLURMD_STARTED=0
if ! our_pid slurmd >/dev/null; then
    SLURMD_STARTED=$(date +%s)
    start_daemon slurmd "$LOG_DIR/slurmd.stderr.log" /usr/sbin/slurmd -D -N "$NODE"
fi

node_state() { timeout 5 sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -n 1; }
# After (re)starting slurmd, the controller's idea of the node counts only once this slurmd has
# registered (slurmctld remembers "idle" from its state files across restarts).
slurmd_registered() {
    local t
    ((SLURMD_STARTED)) || return 0
    t=$(timeout 5 scontrol show node "$NODE" 2>/dev/null | grep -o 'SlurmdStartTime=[^ ]*') || return 1
    t=$(date -d "${t#*=}" +%s 2>/dev/null) || return 1
    ((t >= SLURMD_STARTED - 1))
}
node_idle() {
    local s
    slurmd_registered || return 1
    s=$(node_state)
    case $s in
    idle | mixed | allocated) return 0 ;;
    *down* | *drain* | *fail*)
        # ReturnToService=2 normally does this; a node left down from an earlier run may not.
        timeout 5 scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
        ;;
    esac
    return 1
}
wait_for 60 "node $NODE idle" node_idle ||
    die "node $NODE not idle: $(node_state) ($(timeout 5 sinfo -h -R 2>/dev/null))" slurmctld slurmd

# ---------------------------------------------------------------------------------------------
# 7. Smoke jobs: one on main, one asking for the GPU on gpu (it checks that the fake GPU is
#    bound: CUDA_VISIBLE_DEVICES=0). Both must end COMPLETED in sacct, which also proves that
#    accounting works. (`sbatch --wait` works too, but polls in steps of up to 10 s; polling
#    sacct ourselves saves those seconds.)
smoke_submit() { # smoke_submit LABEL SBATCH_ARGS... -> job id in SMOKE_ID
    local label=$1 id
    shift
    id=$(cd /tmp && timeout 30 sbatch --parsable -o /dev/null -e /dev/null \
        -J "slurm-ci-smoke-$label" -t 5 "$@") || die "smoke job ($label): sbatch $* failed" slurmctld
    SMOKE_ID=${id%%;*}
}
smoke_wait() { # smoke_wait LABEL ID
    local label=$1 id=$2 state='' deadline=$((SECONDS + 120))
    while ((SECONDS < deadline)); do
        state=$(timeout 10 sacct -X -P -n -j "$id" -o State 2>/dev/null | head -n 1) || state=
        case $state in
        COMPLETED)
            log "smoke job $id ($label): COMPLETED"
            return 0
            ;;
        FAILED* | CANCELLED* | TIMEOUT* | OUT_OF_ME* | NODE_FAIL* | BOOT_FAIL* | DEADLINE* | PREEMPTED*)
            break
            ;;
        esac
        sleep 0.5
    done
    timeout 5 scancel "$id" 2>/dev/null || true
    die "smoke job $id ($label) did not complete: sacct state '${state}', squeue:\
 '$(timeout 5 squeue -h -t all -j "$id" -o '%T %r' 2>/dev/null)'" slurmctld slurmd
}
if [[ ${SLURM_CI_SMOKE:-1} != 0 ]]; then
    smoke_submit main -p main --wrap 'hostname'
    id_main=$SMOKE_ID
    # shellcheck disable=SC2016  # expanded in the job, not here
    smoke_submit gpu -p gpu --gpus=1 --wrap 'test "$CUDA_VISIBLE_DEVICES" = 0'
    id_gpu=$SMOKE_ID
    smoke_wait main "$id_main"
    smoke_wait gpu "$id_gpu"
fi

# ---------------------------------------------------------------------------------------------
timeout 10 sinfo -N -o '%N %P %T %c %m %G' || true
log "SLURM cluster '$CLUSTER' ready in $((SECONDS - T0))s: node $NODE ($CPUS CPUs, ${MEM} MB," \
    "1 fake gpu), partitions: $PARTITIONS (default main); logs in $LOG_DIR; stop with $HERE/stop.sh"
