"""The HTTP side of a real server: static files, ICE config, health, QR, errors."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import aiohttp

from natlab.servers import RunningServer, running_server
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
    async with http.post(server.url + "/api/ice-servers") as response:
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


async def test_ice_servers_without_turn(server: RunningServer, http: aiohttp.ClientSession) -> None:
    async with http.get(server.url + "/api/ice-servers") as response:
        assert response.headers["Cache-Control"] == "no-store"
        body = await response.json()
    assert body == {"iceServers": [{"urls": [f"stun:127.0.0.1:{server.stun_port}"]}]}


async def test_ice_servers_follow_the_host_the_client_used_or_the_public_host(
    http: aiohttp.ClientSession,
) -> None:
    async with running_server() as server:
        async with http.get(
            server.url + "/api/ice-servers", headers={"Host": "chat.lan:8080"}
        ) as response:
            body = await response.json()
        assert body["iceServers"][0]["urls"] == [f"stun:chat.lan:{server.stun_port}"]
    async with running_server(public_host="203.0.113.7") as server:
        async with http.get(server.url + "/api/ice-servers") as response:
            body = await response.json()
        assert body["iceServers"][0]["urls"] == [f"stun:203.0.113.7:{server.stun_port}"]


async def test_ice_servers_with_turn_carry_fresh_credentials_and_never_the_secret(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    secret = b"a-test-shared-secret-0123456789"
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(secret)
    urls = ("turn:127.0.0.1:3478?transport=udp", "turn:127.0.0.1:3478?transport=tcp")
    async with running_server(
        turn_urls=urls, turn_secret=secret, turn_secret_file=secret_file, turn_ttl=600
    ) as server:
        bodies = []
        for _ in range(2):
            async with http.get(server.url + "/api/ice-servers") as response:
                bodies.append(await response.read())
        for path in ("/", "/healthz"):
            async with http.get(server.url + path) as response:
                bodies.append(await response.read())
    turn = [s for s in json.loads(bodies[0])["iceServers"] if "username" in s][0]
    assert turn["urls"] == list(urls)
    assert turn["username"] != json.loads(bodies[1])["iceServers"][1]["username"]
    for body in bodies:
        assert secret not in body


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
