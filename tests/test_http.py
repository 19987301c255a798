"""The HTTP side of a real server: static files, ICE config, health, QR, errors."""

from __future__ import annotations

import asyncio
import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from natlab.servers import RunningServer, running_server, server_process
from server.qr import QR_MAX_BYTES, QR_PENDING, QrBusy, QrCodes
from server.static import client_web_dir, load_static

ROOT = Path(__file__).resolve().parent.parent
#: Seconds the SVG renderer or the QR scanner may take.
TOOL_TIMEOUT = 30.0


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


def decode_qr(svg: bytes, tmp_path: Path) -> str:
    """What a phone would read: the SVG drawn by librsvg, scanned by zbar."""
    for tool in ("rsvg-convert", "zbarimg"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (Debian librsvg2-bin, zbar-tools)")
    (tmp_path / "code.svg").write_bytes(svg)
    subprocess.run(
        ["rsvg-convert", "--background-color=white", "-o", "code.png", "code.svg"],
        cwd=tmp_path,
        check=True,
        timeout=TOOL_TIMEOUT,
    )
    scanned = subprocess.run(
        ["zbarimg", "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", "code.png"],
        cwd=tmp_path,
        capture_output=True,
        timeout=TOOL_TIMEOUT,
        check=True,
    )
    return scanned.stdout.decode().removesuffix("\n")


async def test_qr_code_of_a_room_link_decodes_to_the_link(
    server: RunningServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    link = server.url + "/?room=design-review&name=Zoë"
    async with http.get(server.url + "/api/qr", params={"text": link}) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/svg+xml"
        svg = await response.read()
    assert decode_qr(svg, tmp_path) == link


@pytest.mark.parametrize(
    "text",
    [
        "",
        "x" * (QR_MAX_BYTES + 1),
        "é" * (QR_MAX_BYTES // 2 + 1),
        "\U0001f600" * 600,  # 2,400 bytes: more than any QR code holds (2,331)
        "\ud800",
    ],
    ids=["empty", "too many characters", "too many bytes", "beyond any code", "lone surrogate"],
)
async def test_qr_text_that_does_not_fit_is_a_json_400(
    server: RunningServer, http: aiohttp.ClientSession, text: str
) -> None:
    async with http.get(server.url + "/api/qr", params={"text": text}) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "bad-request"
    # The largest text that passes is made into a code.
    async with http.get(server.url + "/api/qr", params={"text": "é" * 512}) as response:
        assert response.status == 200


async def test_qr_codes_are_cached_and_bounded() -> None:
    codes = QrCodes(cache_size=2)
    try:
        first = await codes.svg("https://a.example/")
        assert await codes.svg("https://a.example/") == first
        assert codes.rendered == 1
        # Ten at once of one new text: one render.
        await asyncio.gather(*(codes.svg("https://b.example/") for _ in range(10)))
        assert codes.rendered == 2
        await codes.svg("https://c.example/")  # evicts a, the least recently used
        await codes.svg("https://a.example/")
        assert codes.rendered == 4
    finally:
        codes.close()


async def test_qr_refuses_beyond_its_pending_bound() -> None:
    codes = QrCodes(pending=3)
    try:
        results = await asyncio.gather(
            *(codes.svg(f"https://room.example/{i}") for i in range(10)), return_exceptions=True
        )
    finally:
        codes.close()
    # All ten were asked before any render finished: three made, seven refused.
    assert sum(isinstance(r, bytes) for r in results) == 3
    assert sum(isinstance(r, QrBusy) for r in results) == 7


#: Seconds /healthz may take while 40 new codes are made: generous (it answers
#: in milliseconds); with rendering on the event loop it took 1.7 s.
HEALTHZ_DEADLINE = 1.0
PARALLEL_QR = 40


async def test_healthz_answers_while_40_new_qr_codes_are_made() -> None:
    async with server_process() as running, aiohttp.ClientSession() as http:
        url = running.url + "/api/qr"

        async def qr(i: int) -> int:
            text = f"{running.url}/?room=flood-{i}-" + "x" * 400
            async with http.get(url, params={"text": text}) as response:
                await response.read()
                return response.status

        flood = [asyncio.ensure_future(qr(i)) for i in range(PARALLEL_QR)]
        try:
            # Wait until the server is busy with them: the first code is back.
            await asyncio.wait(flood, return_when=asyncio.FIRST_COMPLETED)
            timeout = aiohttp.ClientTimeout(total=HEALTHZ_DEADLINE)
            async with http.get(running.url + "/healthz", timeout=timeout) as response:
                assert response.status == 200
            still_rendering = sum(not task.done() for task in flood)
            statuses = await asyncio.gather(*flood)
        finally:
            for task in flood:
                task.cancel()
    assert still_rendering > 0  # the check ran under load
    # Beyond the pending bound a request is refused (503), never queued without end.
    assert set(statuses) <= {200, 503} and statuses.count(200) >= QR_PENDING


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


def _handshake_headers(origin: str, host: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Host": host,
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }


async def test_dns_rebinding_origin_is_refused_but_the_page_connects(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    # A page at evil.example whose name now resolves to us: Host and Origin agree.
    rebinding = _handshake_headers("http://evil.example", "evil.example")
    async with http.get(server.url + "/ws", headers=rebinding) as response:
        assert response.status == 403
        assert (await response.json())["error"] == "origin-not-allowed"
    # The page itself, by the address and by the loopback name.
    for origin in (server.url, f"http://localhost:{server.port}"):
        async with http.ws_connect(server.ws_url, origin=origin) as ws:
            await ws.send_json({"type": "join", "room": "r", "name": "A"})
            assert (await ws.receive_json())["type"] == "welcome"
