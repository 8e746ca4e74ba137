#!/bin/sh
#***************************************************************************
#* start.sh  --  EXEC resource "POP3, IMAP4, FTP, DNS or TCP monitor" (ismon template)
#*
#* Runs a POP3, IMAP4, FTP, DNS or TCP watch in the FOREGROUND:
#* `clp_imapmon imapwatch ...`, `clp_dnsmon dnswatch ...`.
#*   Start script: ASYNCHRONOUS.  Stop script: synchronous.
#*   Depends on the daemon's EXEC resource (mail, FTP, DNS, Redis ...).
#*   Add a PID monitor resource on this EXEC resource.
#*
#* The watch runs as this script's child.  It probes the daemon every
#* interval; when the daemon stalls or answers wrongly and the retries are
#* used up, the watch logs why and exits 1, and so does this script: the PID
#* monitor sees the process end and fails the group over (or stops the
#* node), as configured.  A watch that exits 4 (the monitor itself failed,
#* not the server) is started again instead (ISMON_RESTARTS).  With
#* ISMON_RESTARTS=0 the watch replaces this shell (exec): the PID the
#* cluster watches is then the watch's own.
#*
#* CLP_EVENT is START or FAILOVER; when CLP_DISK is not SUCCESS the daemon
#* was not started, so neither is the watch (exit ISMON_DISK_ERROR_EXIT).
#***************************************************************************

#==== ADAPT HERE ===========================================================
# Every value below may also come from the environment.
#
# The watch ID: ASCII letters and digits, unique on this machine.  The stop
# script must name the same ID (and the same ISMON_STATE_DIR, if set).
: "${ISMON_WATCH_ID:=imapwatch}"
# The command: clp_pop3mon, clp_imapmon, clp_ftpmon, clp_dnsmon or clp_tcpmon
# (the clp_smtpmon syntax), or "ismon pop3|imap|ftp|dns|tcp" (same options).
: "${ISMON_WATCHMON:=clp_imapmon}"
# The watch's options: server, port, interval, retries, timeout; also
# --starttls or --tls, --ca-file, --auth-file, --retry-interval, --grace,
# --logfile, ...  (clp_imapmon --help lists them; the port defaults to the
# protocol's: 110, 143, 21, 53, or 995, 993, 990, 853 with --tls; TCP has
# none: give -n).  DNS: --query NAME [--type T] [--expect VALUE ...] [--tcp];
# TCP: -n PORT [--send PING\r\n] [--expect \+PONG].  The options are split
# on spaces and nothing else (no quotes, no globbing): a value cannot hold a
# space (give an MX's exchange alone, --expect mail.example.com).  Leave the
# ID out.
: "${ISMON_WATCH_OPTS=-s localhost -i 60 -c 3 -r 10}"
# Exit status when the disk resources failed (CLP_DISK is not SUCCESS).
: "${ISMON_DISK_ERROR_EXIT:=1}"
# The user the watch runs as: ismon, the Debian package's user, when it
# exists (its records are in /run/ismon, where the stop script, run as
# root, finds them); empty: the cluster's own user (root).
: "${ISMON_USER=$(id -u ismon >/dev/null 2>&1 && echo ismon)}"
# When the watch ends with exit status 4 -- the monitor itself failed (no
# descriptors, memory or thread), not the server -- it is started again, at
# most ISMON_RESTARTS times within ISMON_RESTART_WINDOW seconds, instead of
# ending this script (a failover of a healthy service).  0: the watch
# replaces this shell (exec) and every exit reaches the PID monitor.
: "${ISMON_RESTARTS:=3}"
: "${ISMON_RESTART_WINDOW:=600}"
# The watch's records (lock, pidfile, control socket) go to /run/ismon when
# run as root or as ismon; set ISMON_STATE_DIR to choose another folder.
#===========================================================================

PATH=$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/sbin
export PATH

# Run the watch ("$@") as this shell's child, and start it again when it
# ends with exit status 4: the monitor itself failed (no descriptors, memory
# or thread), not the server (docs/failure-rules.md), and failing the group
# over would move a healthy service.  At most ISMON_RESTARTS times within
# ISMON_RESTART_WINDOW seconds; then, and on any other status, this script
# ends with the watch's status, which the PID monitor sees.
watch_restarting() {
    starts=""
    trap 'kill -TERM "$child" 2>/dev/null' TERM INT
    while :; do
        "$@" &
        child=$!
        wait "$child"
        code=$?
        # A signal for this shell (trapped: passed on) ends the wait early.
        while kill -0 "$child" 2>/dev/null; do
            wait "$child"
            code=$?
        done
        [ "$code" -eq 4 ] || exit "$code"
        now=$(date +%s)
        recent=""
        count=0
        for started in $starts; do
            if [ $((now - started)) -lt "$ISMON_RESTART_WINDOW" ]; then
                recent="$recent $started"
                count=$((count + 1))
            fi
        done
        date +"%Y/%m/%d %T"
        if [ "$count" -ge "$ISMON_RESTARTS" ]; then
            echo "EXIT 4 (the monitor itself failed, not the server: $((count + 1)) times within $ISMON_RESTART_WINDOW s)"
            exit 4
        fi
        echo "RESTART (exit 4: the monitor itself failed, not the server; $((count + 1)) of $ISMON_RESTARTS within $ISMON_RESTART_WINDOW s)"
        starts="$recent $now"
    done
}

run_watch() {
    date +"%Y/%m/%d %T"
    echo "$ISMON_WATCHMON $ISMON_WATCH_ID $ISMON_WATCH_OPTS"
    echo "EXIT (the watch runs until it stops or the server fails)"
    # As ISMON_USER, through setpriv, which execs the watch: the PID of the
    # child (or, with ISMON_RESTARTS=0, of this shell) is the watch's own.
    as_user=
    if [ -n "$ISMON_USER" ] && [ "$(id -un)" != "$ISMON_USER" ]; then
        as_user="setpriv --reuid=$ISMON_USER --regid=$(id -g "$ISMON_USER") --init-groups --"
        : "${ISMON_STATE_DIR:=/run/ismon}"
        export ISMON_STATE_DIR
    fi
    # Word splitting of the command and the options is intended; globbing is
    # not (a regex such as --expect a.* must reach the watch as it is).
    set -f
    if [ "$ISMON_RESTARTS" -eq 0 ]; then
        # shellcheck disable=SC2086
        exec $as_user $ISMON_WATCHMON "$ISMON_WATCH_ID" $ISMON_WATCH_OPTS
    fi
    # shellcheck disable=SC2086
    watch_restarting $as_user $ISMON_WATCHMON "$ISMON_WATCH_ID" $ISMON_WATCH_OPTS
}

if [ "$CLP_EVENT" = "START" ]; then
    if [ "$CLP_DISK" = "SUCCESS" ]; then
        echo "NORMAL1"
        if [ "$CLP_SERVER" = "HOME" ]; then
            echo "NORMAL2"
        else
            echo "ON_OTHER1"
        fi
        run_watch
    else
        echo "ERROR_DISK from START"
    fi
elif [ "$CLP_EVENT" = "FAILOVER" ]; then
    if [ "$CLP_DISK" = "SUCCESS" ]; then
        echo "FAILOVER1"
        if [ "$CLP_SERVER" = "HOME" ]; then
            echo "FAILOVER2"
        else
            echo "ON_OTHER2"
        fi
        run_watch
    else
        echo "ERROR_DISK from FAILOVER"
    fi
elif [ -n "$CLP_EVENT" ]; then
    # A newer cluster version may pass other events (a restart in place):
    # watch as for START.
    echo "CLP_EVENT=$CLP_EVENT (watching as for START)"
    run_watch
else
    echo "NO_CLP"
    date +"%Y/%m/%d %T"
    echo "EXIT"
    exit 1
fi
# Only reached when the disk failed and the watch was not started.  (When
# the command cannot be executed at all, the shell exits with 126 or 127.)
date +"%Y/%m/%d %T"
echo "EXIT"
exit "$ISMON_DISK_ERROR_EXIT"
