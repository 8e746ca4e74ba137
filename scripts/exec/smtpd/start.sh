#!/bin/sh
#***************************************************************************
#* start.sh  --  EXEC resource "SMTP daemon" (ismon template)
#*
#* Starts the SMTP daemon of the failover group.
#*   Start script: SYNCHRONOUS.  The monitor's EXEC resource (smtpmon/)
#*   depends on this resource, so the daemon is up before it is watched.
#*
#* The cluster sets CLP_EVENT (START, or FAILOVER when the group came over
#* from a failed server), CLP_DISK (SUCCESS when the group's disk resources
#* were activated) and CLP_SERVER (HOME on the group's primary server,
#* OTHER elsewhere).  The echo lines name the case, as the 2004 templates
#* did, so the cluster's script log shows what happened.
#*
#* Exit status: the daemon's start command's (non-zero fails the
#* activation); ISMON_DISK_ERROR_EXIT when the disk failed; 1 when not run
#* by the cluster (CLP_EVENT unset).
#***************************************************************************

#==== ADAPT HERE ===========================================================
# Every value below may also come from the environment.
#
# How to start the daemon: "auto" = systemctl when systemd runs this machine,
# the init script otherwise; "systemd" or "sysv" to force one.
: "${ISMON_INIT:=auto}"
# The daemon's systemd unit (postfix.service, exim4.service, opensmtpd.service).
: "${ISMON_SMTPD_UNIT:=postfix.service}"
# The daemon's init script (/etc/init.d/postfix, /etc/init.d/exim4, ...).
: "${ISMON_SMTPD_INITSCRIPT:=/etc/init.d/postfix}"
# Exit status when the disk resources failed (CLP_DISK is not SUCCESS):
# 1 fails the activation, so the cluster retries or fails over; 0 behaves
# like the 2004 template (report ERROR_DISK, start nothing, succeed).
: "${ISMON_DISK_ERROR_EXIT:=1}"
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

start_daemon() {
    date +"%Y/%m/%d %T"
    if use_systemd; then
        echo "systemctl start $ISMON_SMTPD_UNIT"
        systemctl start "$ISMON_SMTPD_UNIT"
    else
        echo "$ISMON_SMTPD_INITSCRIPT start"
        "$ISMON_SMTPD_INITSCRIPT" start
    fi
    rc=$?
    [ $rc -eq 0 ] || echo "the SMTP daemon did not start (exit status $rc)"
    return $rc
}

rc=0
if [ "$CLP_EVENT" = "START" ]; then
    if [ "$CLP_DISK" = "SUCCESS" ]; then
        echo "NORMAL1"
        if [ "$CLP_SERVER" = "HOME" ]; then
            echo "NORMAL2"
        else
            echo "ON_OTHER1"
        fi
        start_daemon
        rc=$?
    else
        echo "ERROR_DISK from START"
        date +"%Y/%m/%d %T"
        rc=$ISMON_DISK_ERROR_EXIT
    fi
elif [ "$CLP_EVENT" = "FAILOVER" ]; then
    if [ "$CLP_DISK" = "SUCCESS" ]; then
        echo "FAILOVER1"
        if [ "$CLP_SERVER" = "HOME" ]; then
            echo "FAILOVER2"
        else
            echo "ON_OTHER2"
        fi
        start_daemon
        rc=$?
    else
        echo "ERROR_DISK from FAILOVER"
        date +"%Y/%m/%d %T"
        rc=$ISMON_DISK_ERROR_EXIT
    fi
elif [ -n "$CLP_EVENT" ]; then
    # A newer cluster version may pass other events (a restart in place):
    # start as for START.
    echo "CLP_EVENT=$CLP_EVENT (started as for START)"
    start_daemon
    rc=$?
else
    echo "NO_CLP"
    date +"%Y/%m/%d %T"
    rc=1
fi
echo "EXIT"
exit "$rc"
