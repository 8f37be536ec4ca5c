"""Loaded with `-p tests.session_env` (pyproject addopts), before Django reads
its settings: tests run with production-like settings (DEBUG off), where the
development keys are refused, so fresh keys for this session go into the
environment, shared by every process the tests start (hub, worker, commands)."""

from __future__ import annotations

import os
import secrets

from cryptography.fernet import Fernet

os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("K8X_SECRETS_KEY", Fernet.generate_key().decode())
