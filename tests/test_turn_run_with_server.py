"""`make run-turn`: turn/run-with-server.sh starts coturn and the server, and stops both."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp
import pytest

from natlab.coturn import coturn_unavailable_reason, port_is_free
from natlab.lab import Host
from natlab.processes import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "turn" / "run-with-server.sh"
CONFIDE = ROOT / ".venv" / "bin" / "confide"
#: Seconds for both to start (about 1 s here) and to stop.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


@pytest.mark.coturn
async def test_run_with_server_relays_and_stops_both_on_ctrl_c(
    lab_host: Host, tmp_path: Path
) -> None:
    if (reason := coturn_unavailable_reason()) is not None:
        pytest.skip(reason)
    if not CONFIDE.exists():
        pytest.skip(f"needs {CONFIDE} (make run installs it)")
    port, turn_port = free_port(lab_host.ip), free_port(lab_host.ip)
    assert port_is_free(lab_host.ip, turn_port)
    secret_file = tmp_path / "secret"
    env = {
        "PATH": os.environ["PATH"],
        "TMPDIR": str(tmp_path),
        "TURN_SECRET_FILE": str(secret_file),
        "TURN_PORT": str(turn_port),
        "TURN_MIN_PORT": "40000",
        "TURN_MAX_PORT": "40199",
    }
    process = await asyncio.create_subprocess_exec(
        *lab_host.exec_args(["bash", str(SCRIPT), lab_host.ip, str(port)]),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://{lab_host.ip}:{port}"
    try:
        async with aiohttp.ClientSession() as http:

            async def server_up() -> bool:
                try:
                    async with http.get(url + "/healthz") as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return process.returncode is not None  # fail fast below

            await wait_until(server_up, START_TIMEOUT)
            assert process.returncode is None
            async with http.get(url + "/api/ice-servers") as response:
                servers = (await response.json())["iceServers"]
        (turn,) = [s for s in servers if "username" in s]
        assert turn["urls"][0] == f"turn:{lab_host.ip}:{turn_port}?transport=udp"
        assert secret_file.read_text().strip() and secret_file.stat().st_mode & 0o077 == 0

        # Two allocations relaying to each other: the relay works with what it minted.
        uclient = [
            "turnutils_uclient", "-y", "-c", "-n", "5", "-L", lab_host.ip,
            "-p", str(turn_port), "-u", turn["username"], "-w", turn["credential"], lab_host.ip,
        ]  # fmt: skip
        result = await asyncio.to_thread(lab_host.run, uclient, timeout=60, check=False)
        out = result.stdout + result.stderr
        assert result.returncode == 0, out
        assert "tot_send_msgs=10, tot_recv_msgs=10" in out, out

        # Ctrl-C reaches the whole foreground process group.
        os.killpg(process.pid, signal.SIGINT)
        async with asyncio.timeout(STOP_TIMEOUT):
            output = (await process.communicate())[0].decode()
        assert "stopped coturn and the server" in output, output
        # Neither the terminal nor coturn's log shows the secret.
        secret = secret_file.read_text().strip()
        (coturn_log,) = tmp_path.glob("confide-turn.*/turnserver.log")
        assert secret not in output
        assert secret not in coturn_log.read_text()
        # Nothing of either is left in the host, and the secret-bearing config is gone.
        left = {pid: comm(pid) for pid in lab_host.pids() if pid != os.getpid()}
        assert not {"turnserver", "confide", "python3"} & set(left.values()), left
        assert not list(tmp_path.glob("confide-turn.*/turnserver.conf"))
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
