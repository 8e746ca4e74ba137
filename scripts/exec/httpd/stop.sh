#!/bin/sh
#***************************************************************************
#* stop.sh  --  EXEC resource "HTTP daemon" (ismon template)
#*
#* Stops the HTTP daemon of the failover group.
#*   Stop script: SYNCHRONOUS.  The cluster stops the monitor's EXEC
#*   resource (httpmon/) first, so stopping the daemon is not reported as
#*   a failure.
#*
#* CLP_EVENT is START for an ordinary stop, FAILOVER when the group stops
#* to move.  Unlike the 2004 template this script stops the daemon in every
#* case, also when CLP_DISK reports a disk failure or CLP_EVENT is unset:
#* a daemon left running on a server that gives the group up would keep
#* the shared disk busy and answer on the wrong server.
#*
#* Exit status: the daemon's stop command's (non-zero fails the
#* deactivation: the cluster then takes its final action).
#***************************************************************************

#==== ADAPT HERE ===========================================================
# Every value below may also come from the environment.
#
# How to stop the daemon: "auto" = systemctl when systemd runs this machine,
# the init script otherwise; "systemd" or "sysv" to force one.
: "${ISMON_INIT:=auto}"
# The daemon's systemd unit (nginx.service, apache2.service, httpd.service).
: "${ISMON_HTTPD_UNIT:=nginx.service}"
# The daemon's init script (/etc/init.d/nginx, /etc/init.d/apache2, ...).
: "${ISMON_HTTPD_INITSCRIPT:=/etc/init.d/nginx}"
#===========================================================================

PATH=$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/sbin
export PATH

use_systemd() {
    case $ISMON_INIT in
    systemd) return 0 ;;
    sysv) return 1 ;;
    esac
    # sd_booted(3): systemd is the running init.
    [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1
}

stop_daemon() {
    date +"%Y/%m/%d %T"
    if use_systemd; then
        echo "systemctl stop $ISMON_HTTPD_UNIT"
        systemctl stop "$ISMON_HTTPD_UNIT"
    else
        echo "$ISMON_HTTPD_INITSCRIPT stop"
        "$ISMON_HTTPD_INITSCRIPT" stop
    fi
    rc=$?
    [ $rc -eq 0 ] || echo "the HTTP daemon did not stop (exit status $rc)"
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
stop_daemon
rc=$?
echo "EXIT"
exit "$rc"
