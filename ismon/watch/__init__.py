"""One running watch: its schedule, service, records, health and messages."""
