"""The operator's kit in deploy/: alert rules and the Grafana dashboard."""
