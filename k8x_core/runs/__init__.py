"""Runs: queueing, launching as Kubernetes Jobs (Job spec, configs, secrets), transitions, stored logs, live updates."""
