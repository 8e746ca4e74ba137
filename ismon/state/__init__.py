"""The state folder of the watches on this machine: IDs, the lock that says a watch runs, the pidfile, the last-exit record. Standard library only."""
