# shellcheck shell=bash disable=SC2034  # LOG_DIR is used by the scripts that source this
# Helpers shared by start.sh and stop.sh (sourced, not executed).
#
# Every daemon is started by start.sh in the foreground (-D / -F) under `setsid`, so `$!` is the
# daemon itself; its PID goes to $STATE_DIR/<program>.pid. stop.sh stops exactly those PIDs and
# checks /proc/<pid>/comm first, so a PID reused by another program is never signalled.

STATE_DIR=/run/discover-slurm   # PIDs of the daemons start.sh started
LOG_DIR=/var/log/slurm          # all daemon logs (see README.md)

log() { printf '[slurm-ci %(%H:%M:%S)T] %s\n' -1 "$*"; }

# our_pid NAME: print the PID of daemon NAME (= its program name) if start.sh started it and it
# still runs (not a zombie, same program); fail otherwise.
our_pid() {
    local f=$STATE_DIR/$1.pid pid comm stat
    [[ -s $f ]] || return 1
    pid=$(<"$f")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [[ $comm == "$1" ]] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    stat=${stat##*) }                       # field 3 (state) follows "(comm) "
    [[ ${stat:0:1} != Z ]] || return 1
    echo "$pid"
}

# stop_daemon NAME [WAIT_S]: SIGTERM our daemon NAME, wait up to WAIT_S seconds, then SIGKILL.
stop_daemon() {
    local name=$1 wait_s=${2:-30} pid i
    if ! pid=$(our_pid "$name"); then
        rm -f "$STATE_DIR/$name.pid"
        return 0
    fi
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < wait_s * 5; i++)); do
        our_pid "$name" >/dev/null || break
        sleep 0.2
    done
    if our_pid "$name" >/dev/null; then
        log "$name did not exit within ${wait_s}s after SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 25; i++)); do
            our_pid "$name" >/dev/null || break
            sleep 0.2
        done
    fi
    rm -f "$STATE_DIR/$name.pid"
}
