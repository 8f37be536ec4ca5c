from __future__ import annotations

import uuid

import pytest

from k8x_core.events.apikeys import apikey_create
from k8x_core.projects import project_ensure


@pytest.fixture
def project(db):
    return project_ensure(slug=f"p-{uuid.uuid4().hex[:8]}")[0]


@pytest.fixture
def other_project(db):
    return project_ensure(slug=f"o-{uuid.uuid4().hex[:8]}")[0]


@pytest.fixture
def api_key(project):
    """The raw key of a key of ``project``."""
    return apikey_create(project=project, name="test")[1]
