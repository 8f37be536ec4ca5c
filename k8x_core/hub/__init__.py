"""The hub: Kafka events in, matched against triggers (globs, CEL), Event rows and queued Runs out."""
