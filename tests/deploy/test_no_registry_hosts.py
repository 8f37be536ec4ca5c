"""No package or image registry host is written into the repository: mirrors
and registries come from the machine's own configuration (apt sources, pip and
npm config, K8X_* settings). deploy/images/debian-mirror.sh reads the Debian
mirror from apt's sources (one-line and deb822 formats)."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Joined at run time so this file does not contain the names it looks for.
_HOSTS = [
    ("deb", "debian", "org"),
    ("security", "debian", "org"),
    ("archive", "ubuntu", "com"),
    ("dl-cdn", "alpinelinux", "org"),
    ("pypi", "org"),
    ("files", "pythonhosted", "org"),
    ("proxy", "golang", "org"),
    ("sum", "golang", "org"),
    ("registry", "npmjs", "org"),
    ("registry", "yarnpkg", "com"),
    ("repo", "maven", "apache", "org"),
    ("repo1", "maven", "org"),
    ("docker", "io"),
    ("ghcr", "io"),
    ("quay", "io"),
    ("gcr", "io"),
    ("registry", "k8s", "io"),
]
REGISTRY_HOSTS = [".".join(parts) for parts in _HOSTS]


def test_no_tracked_file_names_a_registry_host() -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    hits = []
    for name in filter(None, files):
        path = REPO / name.decode()
        if not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", "replace").lower()
        for host in REGISTRY_HOSTS:
            at = text.find(host)
            while at != -1:
                # A longer host ending in one of these (a registry-1 subdomain) counts too;
                # a word merely containing it (mydocker.iot) does not.
                end = at + len(host)
                if end == len(text) or not (text[end].isalnum() or text[end] == "-"):
                    line = text.count("\n", 0, at) + 1
                    hits.append(f"{name.decode()}:{line}: {host}")
                at = text.find(host, end)
    assert len(files) > 50, "git ls-files listed almost nothing"
    assert hits == [], "registry host names in tracked files:\n" + "\n".join(hits)


def _mirror(apt_dir: Path, suite: str = "bookworm") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(REPO / "deploy" / "images" / "debian-mirror.sh"), suite, str(apt_dir)],
        capture_output=True,
        text=True,
    )


def test_debian_mirror_from_deb822_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n"
        "Components: main\n\n"
        "# the security archive serves another suite\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb deb-src\nURIs: http://mirror.example/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n"
    )
    done = _mirror(tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "http://mirror.example/debian"


def test_debian_mirror_from_one_line_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb-src http://src.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://line.example/debian bookworm main\n"
    )
    done = _mirror(tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "http://line.example/debian"


def test_debian_mirror_missing_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text("deb http://line.example/debian trixie main\n")
    done = _mirror(tmp_path)
    assert done.returncode != 0
    assert "no apt source for suite bookworm" in done.stderr
    assert done.stdout == ""
