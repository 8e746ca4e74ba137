#!/bin/sh
#***************************************************************************
#* stop.sh  --  EXEC resource "POP3, IMAP4, FTP, DNS or TCP monitor" (ismon template)
#*
#* Stops a POP3, IMAP4, FTP, DNS or TCP watch: `clp_imapmon imapwatch --stop`.
#*   Stop script: SYNCHRONOUS.
#*
#* Succeeds when no watch runs (it may have exited already: that is how it
#* reports a failed server).  The watch is stopped in every case, whatever
#* CLP_EVENT and CLP_DISK say.  If it does not end within
#* ISMON_STOP_WAIT seconds, --kill-after sends it SIGTERM, then SIGKILL
#* ISMON_KILL_AFTER seconds later (only to the watch's own process, never to
#* another one that reuses its PID), unless ISMON_FORCE=no (then message 15,
#* exit status 5).
#*
#* Exit status: 0 when no watch runs any more; otherwise --stop's
#* (5: the watch did not end; 4: system error).
#***************************************************************************

#==== ADAPT HERE ===========================================================
# Every value below may also come from the environment.
#
# The watch ID, as in start.sh (and the same ISMON_STATE_DIR, if set).
: "${ISMON_WATCH_ID:=imapwatch}"
# The command, as in start.sh: clp_pop3mon, clp_imapmon, clp_ftpmon,
# clp_dnsmon, clp_tcpmon or "ismon pop3|imap|ftp|dns|tcp".
: "${ISMON_WATCHMON:=clp_imapmon}"
# Seconds --stop waits for the watch to end (1-10000).
: "${ISMON_STOP_WAIT:=10}"
# yes: when --stop times out, SIGTERM the watch, then SIGKILL it after
# ISMON_KILL_AFTER seconds (1-10000).
: "${ISMON_FORCE:=yes}"
: "${ISMON_KILL_AFTER:=5}"
#===========================================================================

PATH=$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/sbin
export PATH

stop_watch() {
    force=
    [ "$ISMON_FORCE" = "yes" ] && force="--kill-after $ISMON_KILL_AFTER"
    date +"%Y/%m/%d %T"
    echo "$ISMON_WATCHMON $ISMON_WATCH_ID --stop -r $ISMON_STOP_WAIT${force:+ $force}"
    # --kill-after tells on stderr which signals the watch took.  Unquoted:
    # the command may be "ismon http", and $force two words or none.
    # shellcheck disable=SC2086
    $ISMON_WATCHMON "$ISMON_WATCH_ID" --stop -r "$ISMON_STOP_WAIT" $force
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
