"""Values and tables every layer shares: the catalogue, exit codes, protocols, requests, results. Standard library and attrs only; no I/O."""
