"""Notifications: rules, payloads, deliveries."""
