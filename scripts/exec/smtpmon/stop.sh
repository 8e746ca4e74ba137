#!/bin/sh
#***************************************************************************
#* stop.sh  --  EXEC resource "SMTP monitor" (ismon template)
#*
#* Stops the SMTP watch: `clp_smtpmon smtpwatch --stop`.
#*   Stop script: SYNCHRONOUS.
#*
#* Succeeds when no watch runs (it may have exited already: that is how it
#* reports a failed server).  The watch is stopped in every case, whatever
#* CLP_EVENT and CLP_DISK say.  If it does not end within
#* ISMON_STOP_WAIT seconds (message 15, exit status 5), it is sent SIGTERM,
#* then SIGKILL, unless ISMON_FORCE=no.
#*
#* Exit status: 0 when no watch runs any more; otherwise the last
#* command's (5: the watch did not end; 4: system error).
#***************************************************************************

#==== ADAPT HERE ===========================================================
# Every value below may also come from the environment.
#
# The watch ID, as in start.sh (and the same ISMON_STATE_DIR, if set).
: "${ISMON_WATCH_ID:=smtpwatch}"
# The command: clp_smtpmon (2004 syntax) or "ismon smtp".
: "${ISMON_SMTPMON:=clp_smtpmon}"
# Seconds --stop waits for the watch to end (1-10000).
: "${ISMON_STOP_WAIT:=10}"
# yes: when --stop times out, SIGTERM then SIGKILL the watch's PID.
: "${ISMON_FORCE:=yes}"
#===========================================================================

PATH=$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/sbin
export PATH

# The watch's PID, or nothing when it does not run.
watch_pid() {
    # shellcheck disable=SC2086
    $ISMON_SMTPMON "$ISMON_WATCH_ID" --disp 2>/dev/null
}

# Whether PID $1 lives (a zombie waiting for its parent does not).
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
    [ "$state" != "Z" ]
}

# Wait up to $2 seconds for PID $1 to end.
wait_gone() {
    n=0
    while alive "$1"; do
        [ "$n" -ge "$(($2 * 10))" ] && return 1
        sleep 0.1 2>/dev/null || sleep 1
        n=$((n + 1))
    done
    return 0
}

stop_watch() {
    date +"%Y/%m/%d %T"
    echo "$ISMON_SMTPMON $ISMON_WATCH_ID --stop -r $ISMON_STOP_WAIT"
    # shellcheck disable=SC2086
    $ISMON_SMTPMON "$ISMON_WATCH_ID" --stop -r "$ISMON_STOP_WAIT"
    rc=$?
    [ $rc -eq 5 ] && [ "$ISMON_FORCE" = "yes" ] || return $rc
    pid=$(watch_pid) || return 0
    case $pid in '' | *[!0-9]*) return 0 ;; esac
    echo "the watch (PID $pid) did not stop: SIGTERM"
    kill -TERM "$pid" 2>/dev/null
    wait_gone "$pid" 5 && return 0
    echo "the watch (PID $pid) did not end: SIGKILL"
    kill -KILL "$pid" 2>/dev/null
    wait_gone "$pid" 5 && return 0
    return $rc
}

if [ "$CLP_EVENT" = "START" ]; then
    if [ "$CLP_DISK" = "SUCCESS" ]; then
        echo "NORMAL1"
        if [ "$CLP_SERVER" = "HOME" ]; then
            echo "NORMAL2"
        else
            echo "ON_OTHER1"
        fi
    else
        echo "ERROR_DISK from START (stopping anyway)"
    fi
elif [ "$CLP_EVENT" = "FAILOVER" ]; then
    if [ "$CLP_DISK" = "SUCCESS" ]; then
        echo "FAILOVER1"
        if [ "$CLP_SERVER" = "HOME" ]; then
            echo "FAILOVER2"
        else
            echo "ON_OTHER2"
        fi
    else
        echo "ERROR_DISK from FAILOVER (stopping anyway)"
    fi
elif [ -n "$CLP_EVENT" ]; then
    echo "CLP_EVENT=$CLP_EVENT (stopping as for START)"
else
    echo "NO_CLP (stopping anyway)"
fi
stop_watch
rc=$?
echo "EXIT"
exit "$rc"
