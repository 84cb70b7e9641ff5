"""Asking every worker: the rows of a table live with the worker that owns their partition.

Peers are the web URLs the workers advertise in the group protocol (Faust's
partition assignor, the same metadata ``table_route`` uses), so no extra
configuration is needed. Each worker answers internal queries from its active
partitions only; the asking worker merges the answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp
import faust

log = logging.getLogger(__name__)

PEER_TIMEOUT = 5.0


def own_url(app: faust.App) -> str:
    return str(app.conf.canonical_url).rstrip("/")


def peer_urls(app: faust.App) -> list[str]:
    """Web URLs of the other workers of this app that own table partitions."""
    try:
        hosts = list(app.assignor.tables_metadata().keys())
    except Exception:
        return []
    me = own_url(app)
    return sorted({str(h).rstrip("/") for h in hosts} - {me})


async def gather(
    app: faust.App,
    path: str,
    *,
    params: Mapping[str, str] | None = None,
    authorization: str | None = None,
) -> tuple[list[Any], list[str]]:
    """GET ``path`` on every peer; returns (JSON bodies, URLs of peers that did not answer)."""
    peers = peer_urls(app)
    if not peers:
        return [], []
    headers = {"Authorization": authorization} if authorization else {}
    timeout = aiohttp.ClientTimeout(total=PEER_TIMEOUT)

    async def one(session: aiohttp.ClientSession, url: str) -> Any:
        async with session.get(url + path, params=dict(params or {}), headers=headers) as resp:
            resp.raise_for_status()
            return await resp.json()

    async with aiohttp.ClientSession(timeout=timeout) as session:
        results = await asyncio.gather(
            *(one(session, url) for url in peers), return_exceptions=True
        )
    bodies: list[Any] = []
    missing: list[str] = []
    for url, result in zip(peers, results, strict=True):
        if isinstance(result, BaseException):
            log.warning("web: worker %s did not answer %s: %s", url, path, type(result).__name__)
            missing.append(url)
        else:
            bodies.append(result)
    return bodies, missing
