"""The watches as Prometheus metrics: the renderer, the snapshots, ismon metrics and the exporter."""
