"""``--relay`` (relay-only ICE) through a real coturn in the lab: the Python peer in
process and ``confide chat --relay`` in another lab host chat through the relay only."""

from __future__ import annotations

import asyncio
from typing import Any

from client_py import events as ev
from client_py.peer import PeerLink, selected_candidates
from client_py.room import Room
from natlab.coturn import Coturn
from natlab.lab import Host
from natlab.servers import RunningServer
from tests.peer_helpers import WAIT, spawn_chat, wait_for_event


def _selected_pair(link: PeerLink) -> tuple[Any, Any]:
    pair = selected_candidates(link.pc)
    assert pair is not None
    return pair


def _candidate_types(sdp: str) -> set[str]:
    return {line.split(" typ ")[1].split()[0] for line in sdp.splitlines()
            if line.startswith("a=candidate:")}  # fmt: skip


async def test_relay_only_python_peers_talk_through_coturn(
    relay_server: RunningServer, lab_coturn: Coturn, lab_host: Host
) -> None:
    far = lab_host.lab.add_host("far")
    cli = await spawn_chat(
        far, relay_server.url, "--room", "relayed", "--name", "Far", "--relay", "--echo",
        "--exit-after", str(WAIT))  # fmt: skip
    near = Room(relay_server.ws_url, "relayed", "Near", relay=True)
    try:
        await near.start()
        await wait_for_event(near, ev.Connected)
        near.send_text("through coturn")
        got = await wait_for_event(near, ev.Message)
        assert (got.name, got.text) == ("Far", "through coturn")
        (link,) = near.peers.values()
        assert link.pc is not None
        assert _candidate_types(link.pc.localDescription.sdp) == {"relay"}
        assert _candidate_types(link.pc.remoteDescription.sdp) == {"relay"}
        local, remote = _selected_pair(link)
        assert (local.type, remote.type) == ("relay", "relay")
        assert local.host == remote.host == lab_coturn.host
    finally:
        await near.close()
        cli.terminate()
        _, err = await asyncio.wait_for(cli.communicate(), WAIT)
    assert cli.returncode == 0, err.decode()  # SIGTERM is a clean leave
