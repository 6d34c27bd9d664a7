"""compose.yaml: PostgreSQL and two replicas behind one port, as `docker-compose config` reads it.

`docker-compose config` validates the file against the Compose schema and resolves anchors and
variables without a Docker daemon. CI installs Debian's docker-compose (see .ci/run).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.settings import Settings

ROOT = Path(__file__).resolve().parent.parent

needs_compose = pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose is not installed"
)


def resolved(**env: str) -> dict[str, Any]:
    """The file as Compose resolves it, with only `env` set."""
    out = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "compose.yaml"), "config"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    config: dict[str, Any] = yaml.safe_load(out)
    return config


@needs_compose
def test_two_replicas_share_one_database_and_wait_for_it_to_be_healthy() -> None:
    services = resolved()["services"]
    replicas = {name: s for name, s in services.items() if s.get("build")}
    assert len(replicas) == 2
    urls = {s["environment"]["DATABASE_URL"] for s in replicas.values()}
    assert len(urls) == 1
    [url] = urls
    assert url.startswith("postgresql+psycopg://") and "@postgres:5432/" in url
    assert "healthcheck" in services["postgres"]
    for replica in replicas.values():
        assert replica["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert "/readyz" in " ".join(replica["healthcheck"]["test"])


@needs_compose
def test_one_port_in_front_of_both_replicas() -> None:
    services = resolved()["services"]
    published = [(n, s["ports"]) for n, s in services.items() if s.get("ports")]
    assert len(published) == 1
    proxy_name, _ = published[0]
    proxy = services[proxy_name]
    replicas = sorted(n for n, s in services.items() if s.get("build"))
    assert {n: c["condition"] for n, c in proxy["depends_on"].items()} == dict.fromkeys(
        replicas, "service_healthy"
    )
    [mount] = proxy["volumes"]
    conf = (ROOT / mount.split(":")[0].removeprefix(str(ROOT) + "/")).read_text()
    upstreams = re.findall(r"^\s*server\s+([\w-]+):8000\b", conf, flags=re.MULTILINE)
    assert sorted(upstreams) == replicas


@needs_compose
def test_slack_settings_pass_through_and_unset_ones_mean_preview_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_ = resolved(SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s", SLACK_CHANNEL="C0123")
    env = set_["services"]["downvote-1"]["environment"]
    assert (env["SLACK_BOT_TOKEN"], env["SLACK_CHANNEL"]) == ("xoxb-1", "C0123")
    unset = resolved()["services"]["downvote-1"]["environment"]
    assert unset["SLACK_BOT_TOKEN"] == ""  # Compose passes an unset variable as empty…
    for name, value in unset.items():
        monkeypatch.setenv(name, value)
    assert Settings(_env_file=None).preview_mode  # type: ignore[call-arg]  # …read as unset


def test_an_empty_slack_token_in_the_environment_is_preview_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "")
    assert Settings(_env_file=None).preview_mode  # type: ignore[call-arg]
