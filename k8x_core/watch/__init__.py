"""Watching runs on the cluster: Job and pod status, observation as pure functions, log following."""
