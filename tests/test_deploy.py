"""deploy/: what can be checked without a Docker engine (there is none here).

The compose file parses, runs Redis, two replicas pointed at it, nginx and
coturn, and sets only ``CONFIDE_*`` variables that ``confide serve`` reads; the
nginx configuration passes ``nginx -t`` (Debian's nginx-light), with the
replicas' names pointed at loopback and a throwaway certificate.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from server.config import env_name, option_names
from server.tls import self_signed_paths

yaml = pytest.importorskip("yaml", reason="needs PyYAML to read the compose file")

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return data


def test_compose_runs_redis_two_replicas_a_proxy_and_coturn() -> None:
    services = compose()["services"]
    assert set(services) == {"redis", "confide-1", "confide-2", "nginx", "coturn"}
    assert "--save" in services["redis"]["command"]
    replicas = [services["confide-1"], services["confide-2"]]
    for replica in replicas:
        env = replica["environment"]
        assert env["CONFIDE_REDIS_URL"] == "redis://redis:6379/0"
        assert replica["build"]["dockerfile"] == "deploy/Dockerfile"
    # nginx's fixed address is the one the replicas trust for X-Forwarded-For.
    nginx_ip = services["nginx"]["networks"]["back"]["ipv4_address"]
    assert replicas[0]["environment"]["CONFIDE_TRUSTED_PROXIES"] == nginx_ip


def test_compose_sets_only_variables_confide_serve_reads() -> None:
    known = {env_name(option) for option in option_names()}
    for name in ("confide-1", "confide-2"):
        variables = set(compose()["services"][name]["environment"])
        assert variables <= known, variables - known


def test_the_dockerfile_installs_the_redis_extra() -> None:
    assert '".[redis]"' in (DEPLOY / "Dockerfile").read_text()


def test_nginx_accepts_the_configuration(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.skip("needs nginx (Debian package nginx-light)")
    cert, key = self_signed_paths(["localhost"], tmp_path / "tls")
    text = (DEPLOY / "nginx.conf").read_text()
    text = text.replace("confide-1:8080", "127.0.0.1:8080").replace(
        "confide-2:8080", "127.0.0.1:8081"
    )
    text = text.replace("/etc/nginx/tls/fullchain.pem", str(cert))
    text = text.replace("/etc/nginx/tls/privkey.pem", str(key))
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    result = subprocess.run(
        [nginx, "-t", "-c", str(conf), "-p", str(tmp_path), "-g", f"pid {tmp_path}/nginx.pid;"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr
