#!/usr/bin/env bash
# Stop the daemons that start.sh started (PIDs in /run/discover-slurm), in reverse order:
# slurmd, slurmctld, slurmdbd, MariaDB, munged. SIGTERM, a bounded wait, then SIGKILL.
# Daemons not started by start.sh are left alone. Idempotent; exits 0 when nothing runs.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$HERE/lib.sh"

[[ $EUID -eq 0 ]] || { echo "slurm-ci: stop.sh must run as root" >&2; exit 1; }

# Cancel queued/running jobs first so that no job processes (slurmstepd) outlive slurmd.
if our_pid slurmctld >/dev/null; then
    jobs=$(timeout 10 squeue -h -o %A 2>/dev/null | tr '\n' ' ')
    if [[ -n ${jobs// /} ]]; then
        log "cancelling jobs: $jobs"
        # shellcheck disable=SC2086
        timeout 10 scancel $jobs 2>/dev/null || true
        for ((i = 0; i < 40; i++)); do
            [[ -z $(timeout 5 squeue -h -t pending,running,completing -o %A 2>/dev/null) ]] && break
            sleep 0.5
        done
    fi
fi

stop_daemon slurmd 30
stop_daemon slurmctld 30
stop_daemon slurmdbd 30
stop_daemon mariadbd 60   # InnoDB shutdown can take a few seconds
stop_daemon munged 15
log "stopped"
exit 0
