"""free_port never hands the same port out twice in a row within one process."""

from __future__ import annotations

import socket

from zoneapp.stack.process import free_port


def test_free_ports_are_distinct_even_when_none_is_bound_yet() -> None:
    """Kafka refused 'two listeners on the same port' when its client and controller
    ports came from two calls whose first socket was already closed (seen on CI)."""
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)


def test_a_handed_out_port_is_bindable() -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", port))
