"""
ismon: an Internet server monitor for high-availability clusters.

Probes an HTTP or SMTP daemon on a fixed schedule and exits when it stalls or
answers wrongly, so the cluster manager watching its PID fails the service
over.  Compatible with NEC CLUSTERPRO's clp_httpmon / clp_smtpmon.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
