"""Events in: CloudEvents, ingestion and its credentials (API keys, webhooks, run tokens), and the cron scheduler."""
