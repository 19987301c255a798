"""The HTTP side of a real server: static files, ICE config, health, QR, errors."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import aiohttp

from natlab.servers import RunningServer
from server.static import client_web_dir, load_static

ROOT = Path(__file__).resolve().parent.parent


async def test_index_is_served_from_memory_with_etag_and_security_headers(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    index = (client_web_dir() / "index.html").read_bytes()
    async with http.get(server.url + "/", headers={"Accept-Encoding": "identity"}) as response:
        assert response.status == 200
        assert await response.read() == index
        assert response.headers["Content-Type"].startswith("text/html")
        assert response.headers["Cache-Control"] == "no-cache"
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        etag = response.headers["ETag"]
    async with http.get(server.url + "/?room=abc", headers={"If-None-Match": etag}) as again:
        assert again.status == 304
        assert await again.read() == b""


async def test_every_client_file_is_served_and_compressed_when_accepted(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    files = load_static()
    assert "/index.html" in files
    for path, item in files.items():
        async with http.get(
            server.url + path, headers={"Accept-Encoding": "gzip"}, auto_decompress=False
        ) as response:
            assert response.status == 200, path
            body = await response.read()
        if item.gzipped is not None:
            assert response.headers["Content-Encoding"] == "gzip"
            assert gzip.decompress(body) == item.body
        else:
            assert body == item.body


async def test_errors_are_json(server: RunningServer, http: aiohttp.ClientSession) -> None:
    async with http.get(server.url + "/nope.js") as response:
        assert response.status == 404
        assert (await response.json())["error"] == "not-found"
    async with http.post(server.url + "/healthz") as response:
        assert response.status == 405
        assert (await response.json())["error"] == "method-not-allowed"
    async with http.get(server.url + "/ws") as response:
        assert response.status == 400
        assert (await response.json())["error"] == "bad-request"


async def test_healthz(server: RunningServer, http: aiohttp.ClientSession) -> None:
    async with http.get(server.url + "/healthz") as response:
        body = await response.json()
    assert body["status"] == "ok"
    assert (body["rooms"], body["peers"], body["connections"]) == (0, 0, 0)
    assert set(body["stun"]) >= {"received", "answered", "dropped_malformed"}


async def test_qr_code_of_a_room_link(server: RunningServer, http: aiohttp.ClientSession) -> None:
    link = server.url + "/?room=design-review"
    async with http.get(server.url + "/api/qr", params={"text": link}) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/svg+xml"
        svg = await response.text()
    assert svg.startswith("<svg") and "path" in svg
    async with http.get(server.url + "/api/qr") as response:
        assert response.status == 400
        assert (await response.json())["error"] == "bad-request"
    async with http.get(server.url + "/api/qr", params={"text": "x" * 2000}) as response:
        assert response.status == 400


def test_pip_install_serves_the_same_client_files(tmp_path: Path) -> None:
    """A non-editable install carries client_web beside the server package, and every subpackage."""
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    code = (
        "import json, server.app, server.static as s;"
        "print(json.dumps({p: f.etag for p, f in s.load_static().items()}))"
    )
    installed = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
    )
    assert installed.stdout.strip().startswith("{")
    ours = {path: item.etag for path, item in load_static().items()}
    assert json.loads(installed.stdout) == ours
