"""What operators watch: /healthz and /readyz for load balancers, /metrics for Prometheus, the
workers' heartbeats, and one JSON log line per request and per job (docs/deploy.md, "Health and
metrics")."""
