"""Scope merge order: service > project > platform."""

from __future__ import annotations

import pytest

from k8x_core.models import Project, Service
from k8x_core.runs.configs import config_set, configs_resolve, secret_keys_resolve, secret_set, secrets_resolve

pytestmark = pytest.mark.django_db


@pytest.fixture
def services() -> tuple[Service, Service, Service]:
    acme = Project.objects.create(slug="acme")
    zeta = Project.objects.create(slug="zeta")
    return (
        Service.objects.create(project=acme, name="a", image="x"),
        Service.objects.create(project=acme, name="b", image="x"),
        Service.objects.create(project=zeta, name="c", image="x"),
    )


def test_configs_merge_service_over_project_over_platform(services) -> None:
    a, b, c = services
    config_set(key="LEVEL", value="platform")
    config_set(key="REGION", value="eu")
    config_set(key="LEVEL", value="project", project=a.project)
    config_set(key="TEAM", value="acme", project=a.project)
    config_set(key="LEVEL", value="service", service=a)
    config_set(key="ONLY_C", value="c", service=c)

    assert configs_resolve(service=a) == {"LEVEL": "service", "REGION": "eu", "TEAM": "acme"}
    assert configs_resolve(service=b) == {"LEVEL": "project", "REGION": "eu", "TEAM": "acme"}
    assert configs_resolve(service=c) == {"LEVEL": "platform", "ONLY_C": "c", "REGION": "eu"}


def test_secrets_merge_the_same_way(services) -> None:
    a, b, c = services
    secret_set(key="TOKEN", value="platform")
    secret_set(key="TOKEN", value="project", project=a.project)
    secret_set(key="TOKEN", value="service", service=a)
    secret_set(key="DB", value="db", project=c.project)

    assert secrets_resolve(service=a) == {"TOKEN": "service"}
    assert secrets_resolve(service=b) == {"TOKEN": "project"}
    assert secrets_resolve(service=c) == {"DB": "db", "TOKEN": "platform"}
    assert secret_keys_resolve(service=c) == ["DB", "TOKEN"]


def test_service_of_another_project_is_refused(services) -> None:
    a, _, c = services
    with pytest.raises(ValueError, match="not in project"):
        config_set(key="X", value="1", project=a.project, service=c)
