"""The release commands: ``faust -A zoneapp quarantine``, ``release-request``,
``release-approve``, ``release-show``, ``releases`` (README "Approved release").

They are clients of a running worker's HTTP API, with the caller's own API key, so the
two-person rule, the roles and the audit trail are the worker's, exactly as over HTTP:
nothing here opens a key or the quarantine topic. The key is read from a file
(``--key-file`` or ``ZONEAPP_API_KEY_FILE``; ``-`` reads standard input), never from the
command line. The worker's URL is ``--url`` (default: this host's ``ZONEAPP_WEB_PORT``,
https when ``ZONEAPP_WEB_TLS_*`` is set, verified against ``ZONEAPP_WEB_TLS_CAFILE``).
Exit status 1 when the worker refuses, with its error code and fixed message.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
import faust
import orjson
from faust.cli import AppCommand, argument, option

from zoneapp.runtime import Runtime

KEY_FILE_ENV = "ZONEAPP_API_KEY_FILE"


def _key(path: str | None) -> str:
    path = path or os.environ.get(KEY_FILE_ENV)
    if not path:
        print(f"zoneapp: give --key-file or {KEY_FILE_ENV}", file=sys.stderr, flush=True)
        raise SystemExit(2)
    text = sys.stdin.readline() if path == "-" else Path(path).read_text(encoding="utf-8")
    return text.strip()


async def call_api(
    runtime: Runtime,
    url: str | None,
    key_file: str | None,
    method: str,
    path: str,
    body: Any = None,
    params: dict[str, str] | None = None,
) -> Any:
    """One call to the worker; the answer's JSON, or exit 1 with its error."""
    settings = runtime.settings
    tls = settings.web_tls
    base = (url or f"{tls.scheme}://127.0.0.1:{settings.web_port}").rstrip("/")
    headers = {"Authorization": f"Bearer {_key(key_file)}"}
    ssl_context = tls.client_context() if base.startswith("https:") else None
    timeout = aiohttp.ClientTimeout(total=60)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.request(
            method,
            base + path,
            headers=headers,
            data=None if body is None else orjson.dumps(body),
            params=params,
            ssl=ssl_context if ssl_context is not None else True,
        ) as resp,
    ):
        raw = await resp.read()
    try:
        answer = orjson.loads(raw)
    except orjson.JSONDecodeError:
        answer = None
    if resp.status >= 400 or not isinstance(answer, dict):
        error = answer if isinstance(answer, dict) else {}
        print(
            f"refused ({resp.status} {error.get('error', 'error')}): {error.get('detail', '')}",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(1)
    return answer


def _print(self: AppCommand, value: Any) -> None:
    self.say(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


URL = option("--url", help="the worker's web URL (default: this host's ZONEAPP_WEB_PORT)")
KEY = option("--key-file", help=f"file holding your API key ('-': stdin; default ${KEY_FILE_ENV})")


def register_release_commands(app: faust.App, runtime: Runtime) -> None:
    @app.command(
        URL,
        KEY,
        option("--boundary", help="only this boundary"),
        option("--detector", help="only this detector"),
        option("--since", help="from this time (ISO-8601 or epoch seconds)"),
        option("--limit", default="50", help="at most this many (1-500)"),
        option("--json", "as_json", is_flag=True, default=False, help="print JSON"),
    )
    async def quarantine(
        self: AppCommand,
        url: str | None = None,
        key_file: str | None = None,
        boundary: str | None = None,
        detector: str | None = None,
        since: str | None = None,
        limit: str = "50",
        as_json: bool = False,
    ) -> Any:
        """List quarantined records: ids, boundary, reason, detector, path, time; no value."""
        query = {"boundary": boundary, "detector": detector, "since": since, "limit": limit}
        page = await call_api(
            runtime,
            url,
            key_file,
            "GET",
            "/quarantine",
            params={k: v for k, v in query.items() if v},
        )
        if as_json:
            _print(self, page)
            return
        for item in page["items"]:
            self.say(
                f"{item['violation_id']}  {item['timestamp']}  {item['boundary']}  "
                f"{item['reason']}  {item['detector'] or '-'}  {item['field_path']}  "
                f"{item['record_id']}  released: {item['released_by'] or '-'}"
            )

    @app.command(
        URL,
        KEY,
        option("--boundary", required=True, help="the boundary the records were quarantined at"),
        option("--violation", "violations", multiple=True, help="a record's violation id"),
        option("--filter-detector", help="or: every record this detector caught"),
        option("--filter-reason", help="... and of this reason"),
        option("--filter-path", help="... and at this field path"),
        option("--filter-since", help="... since this time"),
        option("--filter-until", help="... until this time"),
        option("--reason", required=True, help="why the records may cross"),
        option("--allow", "allow", help="the exception: let this detector through at --path"),
        option("--transform", help="the exception: apply this transform at --path"),
        option("--param", "params", multiple=True, help="a transform parameter NAME=VALUE"),
        option("--path", required=True, help="the field path of the exception"),
    )
    async def release_request(
        self: AppCommand,
        url: str | None = None,
        key_file: str | None = None,
        boundary: str = "",
        violations: tuple[str, ...] = (),
        filter_detector: str | None = None,
        filter_reason: str | None = None,
        filter_path: str | None = None,
        filter_since: str | None = None,
        filter_until: str | None = None,
        reason: str = "",
        allow: str | None = None,
        transform: str | None = None,
        params: tuple[str, ...] = (),
        path: str = "",
    ) -> Any:
        """File a release request (a second officer must approve it)."""
        if (allow is None) == (transform is None):
            print("zoneapp: give --allow DETECTOR or --transform NAME", file=sys.stderr)
            raise SystemExit(2)
        parsed: dict[str, Any] = {}
        for item in params:
            name, sep, value = item.partition("=")
            if not sep:
                print("zoneapp: --param takes NAME=VALUE", file=sys.stderr)
                raise SystemExit(2)
            try:
                parsed[name] = orjson.loads(value)
            except orjson.JSONDecodeError:
                parsed[name] = value
        exception = (
            {"allow": {"detector": allow, "path": path}}
            if allow is not None
            else {"transform": {"name": transform, "path": path, "params": parsed}}
        )
        body: dict[str, Any] = {"boundary": boundary, "reason": reason, "exception": exception}
        wanted = {
            "detector": filter_detector,
            "reason": filter_reason,
            "field_path": filter_path,
            "since": filter_since,
            "until": filter_until,
        }
        if violations:
            body["violation_ids"] = list(violations)
        else:
            body["filter"] = {k: v for k, v in wanted.items() if v}
        _print(self, await call_api(runtime, url, key_file, "POST", "/releases", body))

    @app.command(URL, KEY, argument("release_id"))
    async def release_approve(
        self: AppCommand, release_id: str, url: str | None = None, key_file: str | None = None
    ) -> Any:
        """Approve another officer's release request; the worker then runs it."""
        path = f"/releases/{release_id}/approve"
        _print(self, await call_api(runtime, url, key_file, "POST", path))

    @app.command(URL, KEY, argument("release_id"))
    async def release_show(
        self: AppCommand, release_id: str, url: str | None = None, key_file: str | None = None
    ) -> Any:
        """A release request and its outcome per record."""
        _print(self, await call_api(runtime, url, key_file, "GET", f"/releases/{release_id}"))

    @app.command(URL, KEY)
    async def releases(
        self: AppCommand, url: str | None = None, key_file: str | None = None
    ) -> Any:
        """Every release request this worker keeps, newest first."""
        _print(self, await call_api(runtime, url, key_file, "GET", "/releases"))
