"""The command lines (ismon, clp_*mon, twistd), their manual pages, and the process around a watch."""
