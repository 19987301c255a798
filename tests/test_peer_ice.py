"""ICE configuration for aiortc (client_py/peer.py), from a welcome's iceServers."""

from __future__ import annotations

from typing import Any

from aiortc import RTCIceTransportPolicy

from client_py.peer import ice_configuration, session_of


def test_first_stun_and_a_udp_turn_url_are_chosen_and_relay_is_the_enum() -> None:
    servers: list[dict[str, Any]] = [
        {"urls": ["stun:10.0.0.1:3478", "stun:10.0.0.2:3478"]},
        {
            "urls": ["turn:t.example:3478?transport=tcp", "turn:t.example:3478?transport=udp"],
            "username": "1767225600:abc",
            "credential": "c3VwZXI=",
        },
        {"urls": "turn:other.example:3478", "username": "u", "credential": "p"},
    ]
    config = ice_configuration(servers, relay=True)
    assert config.iceTransportPolicy is RTCIceTransportPolicy.RELAY
    assert config.iceServers is not None
    stun, turn = config.iceServers
    assert stun.urls == "stun:10.0.0.1:3478"
    assert turn.urls == "turn:t.example:3478?transport=udp"
    assert (turn.username, turn.credential) == ("1767225600:abc", "c3VwZXI=")
    plain = ice_configuration(servers[:1], relay=False)
    assert plain.iceTransportPolicy is RTCIceTransportPolicy.ALL
    # No servers means none: never aiortc's default public STUN server.
    assert ice_configuration([], relay=False).iceServers == []


def test_session_of_reads_the_o_line() -> None:
    assert session_of("v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n") == (
        "4611731400430051336"
    )
    assert session_of("v=0\r\n") == ""
