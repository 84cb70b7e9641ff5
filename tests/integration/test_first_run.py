"""The first run, as a newcomer does it: `python -m zoneapp.stack run` (what `make run`
calls), then the URL and the curl lines it prints, copied as they are.

Nothing is injected: the API keys, the token, the port and the commands all come from
the program's own output; the curl lines run in bash with the real curl binary, the
zone map URL in a real headless Chromium.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from tests.waiting import wait_for
from zoneapp.stack import EmbeddedStack, WorkerProcess, demo, free_port
from zoneapp.web.auth import ApiKeys

from .chromium import PageVisit, screenshot, visit_page
from .conftest import EXAMPLE_POLICY, REPO, WORKER_READY_TIMEOUT, require_prerequisites
from .tracing.otlp_receiver import OtlpReceiver

pytestmark = pytest.mark.integration

ARTIFACTS = REPO / "artifacts"
TRY_IT_TIMEOUT = 180.0
LABELS = ("zone map", "zones", "violations", "token", "detokenize", "audit", "peek", "traces")
ZONE_ORDER = ["restricted", "confidential", "internal", "public"]


class StackRun:
    """``python -m zoneapp.stack run`` as a child process, its output read line by line."""

    def __init__(self, argv: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.block_lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def read_until(self, done: Callable[[str], bool], timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                pytest.fail(f"stack run exited ({self.proc.wait()}) before {what}:\n{self.text}")
            self.lines.append(line)
            if done(line):
                return line
        pytest.fail(f"no {what} after {timeout:.0f}s:\n{self.text}")

    def try_it(self) -> dict[str, str]:
        """The "Try it" block: label -> what follows it on the line."""
        self.read_until(lambda line: line.startswith("Try it"), TRY_IT_TIMEOUT, "Try it block")
        block: dict[str, str] = {}
        while True:
            line = self.read_until(lambda _: True, 10, "the rest of the Try it block")
            if not line.strip():
                return block
            self.block_lines.append(line)
            found = re.match(r"^  (\S+(?: \S+)?)\s{2,}(\S.*)$", line)
            if found and found[1] in (*LABELS, "keys"):
                block[found[1]] = found[2]

    def stop(self) -> int:
        """Ctrl-C, as the user would; the exit code."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            code = self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.read_rest()
        return code

    def read_rest(self) -> None:
        while True:
            try:
                line = self._queue.get(timeout=5)
            except queue.Empty:
                return
            if line is None:
                return
            self.lines.append(line)


def require_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"this test needs {name}: `apt-get install -y {package}` (scripts/bootstrap.sh "
            "installs it)",
            pytrace=False,
        )
    return path


def shell(line: str, cwd: Path, timeout: float = 30) -> str:
    """Run a printed command line as a user pasting it into bash; its stdout."""
    result = subprocess.run(
        ["bash", "-c", line], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (line, result.returncode, result.stderr)
    return result.stdout


@contextlib.contextmanager
def following(line: str, cwd: Path) -> Iterator[Callable[[Callable[[str], bool], float], str]]:
    """Start a printed long-running command (``stack tail``); yields ``wait(done, timeout)``,
    which returns its output so far once ``done(output)`` holds. Stopped with Ctrl-C."""
    proc = subprocess.Popen(
        ["bash", "-c", line],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    chunks: queue.Queue[str] = queue.Queue()
    stdout = proc.stdout
    assert stdout is not None

    def pump() -> None:
        for chunk in stdout:
            chunks.put(chunk)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []

    def wait(done: Callable[[str], bool], timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                seen.append(chunks.get(timeout=0.5))
            if done("".join(seen)):
                return "".join(seen)
            assert proc.poll() is None, f"{line} exited {proc.returncode}:\n{''.join(seen)}"
        pytest.fail(f"{line}: not there after {timeout:.0f}s; output:\n{''.join(seen)[-3000:]}")

    try:
        yield wait
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        try:
            assert proc.wait(timeout=15) == 0, "tail should exit 0 on Ctrl-C"
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def records(output: str) -> list[dict[str, Any]]:
    """The JSON values of the records ``stack tail`` printed (the last one may still be
    arriving: an incomplete block is left out)."""
    values = []
    for block in re.split(r"\n(?=\S)", output):
        _, found, body = block.partition("\n  value:   ")
        if found:
            with contextlib.suppress(ValueError):
                values.append(json.loads(body))
    return values


def requested_paths(visit: PageVisit) -> set[str]:
    return {urlsplit(r["url"]).path for r in visit.requests if r["url"]}


def dom_int(text: str | None) -> int:
    assert text is not None
    return int(text.replace(",", ""))


def zone(view: dict[str, Any], name: str) -> dict[str, Any]:
    return next(z for z in view["zones"] if z["name"] == name)


@pytest.mark.usefixtures("prerequisites")
def test_first_run_as_a_newcomer(tmp_path: Path) -> None:
    require_tool("curl", "curl")
    home = tmp_path / "checkout"  # where the newcomer types the commands
    home.mkdir()
    run = StackRun([sys.executable, "-m", "zoneapp.stack", "run"], cwd=home)
    try:
        block = run.try_it()
        assert set(block) == {*LABELS, "keys"}, block
        url = block["zone map"]
        parts = urlsplit(url)
        assert (parts.scheme, parts.hostname, parts.path) == ("http", "127.0.0.1", "/")
        analyst = parts.fragment.removeprefix("key=")
        assert parts.fragment == f"key={analyst}" and analyst.startswith("zk_")
        port = parts.port
        # Every curl line talks to the printed worker and names its key in a header.
        for label in ("zones", "violations", "token", "detokenize"):
            assert block[label].startswith("curl -s -H 'Authorization: Bearer zk_"), block[label]
            assert f"http://127.0.0.1:{port}/" in block[label]

        # 1. /zones: every zone of the example policy, by classification, with live counts.
        def counted() -> dict[str, Any] | None:
            view: dict[str, Any] = json.loads(shell(block["zones"], home))
            return view if zone(view, "restricted")["consumed"] > 0 else None

        zones = wait_for(counted, 30, "the restricted zone to count records", interval=1)
        assert [z["name"] for z in zones["zones"]] == ZONE_ORDER
        assert zones["policy"]["version"] == "2026.11.1"
        assert {b["name"] for b in zones["boundaries"]} >= {"payments-to-confidential"}

        # 2. /violations?limit=5: the newest violation events, never a value.
        def violated() -> dict[str, Any] | None:
            found: dict[str, Any] = json.loads(shell(block["violations"], home))
            return found if found["items"] else None

        page = wait_for(violated, 30, "a violation", interval=1)
        assert 1 <= page["count"] == len(page["items"]) <= 5
        for event in page["items"]:
            assert event["action"] == "quarantined" and event["reason"]
            assert {"id", "boundary", "source", "findings", "trace_id"} <= set(event)

        # 3. /tokens/<the token the demo just produced>: its metadata (analyst key).
        token_url = block["token"].split()[-1]
        token = token_url.rsplit("/", 1)[-1]
        assert re.fullmatch(r"tok_[a-z]{32}", token), token
        # ... the customer e-mail token of the forwarded record printed just before.
        example = run.text.rpartition("example from confidential.payments")[2]
        assert f'"email": "{token}"' in example.partition("Try it")[0]
        info = json.loads(shell(block["token"], home))
        query = parse_qs(urlsplit(block["detokenize"].split()[-1].strip("'")).query)
        tenant = query["tenant"][0]
        assert query["token"] == [token] and query["zone"] == ["restricted"]
        assert info == {
            "token": token,
            "tenant": tenant,
            "field_class": "email",
            "zone": "restricted",
            "zones": ["restricted"],
            "created": info["created"],
        }

        # 4. /detokenize (officer key): the e-mail behind it, one of the demo's customers.
        value = json.loads(shell(block["detokenize"], home))["value"]
        assert value in {p.email for p in demo.customers() if p.tenant_id == tenant}, value

        # 5. The audit topic, with the printed tail command: the call above is there.
        with following(block["audit"], home) as wait:
            output = wait(
                lambda out: any(
                    e.get("action") == "detokenize" and e.get("token") == token
                    for e in records(out)
                ),
                30,
            )
        (event,) = [e for e in records(output) if e.get("token") == token]
        assert event["who"] == "demo-officer" and event["outcome"] == "allowed"
        assert event["zone"] == "restricted" and event["tenant"] == tenant
        assert value not in output  # the audit trail never holds the value
        assert "key:" in output and "headers:" in output

        # The peek command shows forwarded records with their key, headers and value.
        with following(block["peek"], home) as wait:
            output = wait(lambda out: len(records(out)) >= 3, 30)
        assert "zoneapp-boundary=payments-to-confidential" in output
        assert all(r["customer"]["email"].startswith("tok_") for r in records(output))

        # 6. The zone map URL in a real browser, exactly as printed: live counts, violations.
        before = zone(json.loads(shell(block["zones"], home)), "restricted")["consumed"]
        visit = visit_page(
            url,
            {
                "href": "location.href",
                "stored": "sessionStorage.getItem('zoneapp.apiKey')",
                "zones": "[...document.querySelectorAll('[data-zone]')].map(e => e.dataset.zone)",
                "consumed": "document.querySelector('[data-zone=restricted] .count-consumed')"
                "?.textContent",
                "violations": "document.querySelectorAll('#violations td.reason').length",
                "login": "document.getElementById('login').hidden",
            },
            # Watched until it has moved the key out of the address bar, rendered the
            # zones, a count and a violation, and fetched both APIs: what a user sees
            # once the page has loaded. (Each is asserted exactly below.)
            ready=lambda page: (
                bool(page.values["stored"])
                and "#" not in (page.values["href"] or "#")
                and page.values["zones"] == ZONE_ORDER
                and bool(page.values["consumed"])
                and (page.values["violations"] or 0) > 0
                and {"/zones", "/violations"} <= requested_paths(page)
            ),
        )
        after = zone(json.loads(shell(block["zones"], home)), "restricted")["consumed"]
        values = visit.values
        assert values["zones"] == ZONE_ORDER
        assert 0 < before <= dom_int(values["consumed"]) <= after, (before, values, after)
        assert values["violations"] > 0 and values["login"] is True
        # The key left the address bar for the tab's sessionStorage ...
        assert values["href"] == f"http://127.0.0.1:{port}/" and values["stored"] == analyst
        # ... and travelled only as the Authorization header of the page's API calls.
        carried = [r for r in visit.requests if analyst in json.dumps(r)]
        assert carried, visit.requests
        for request in visit.requests:
            assert analyst not in request["url"]
            for name, header in request["headers"].items():
                if analyst in header:
                    assert (name.lower(), header) == ("authorization", f"Bearer {analyst}")
        assert {"/zones", "/violations"} <= requested_paths(visit)
        screenshot(url, ARTIFACTS / "first-run-zone-map.png")

        # The plaintext keys: in the Try it block, nowhere else (output, files, logs).
        keys = re.findall(r"zk_[A-Za-z0-9_-]{43}", block["keys"])
        assert len(set(keys)) == 3 and analyst in keys
        outside = [line for line in run.lines if line not in run.block_lines]
        assert not any(k in line for k in keys for line in outside)
        workdir = home / ".zoneapp"
        keys_file = workdir / "demo" / "api-keys.yaml"
        assert keys_file.stat().st_mode & 0o777 == 0o600
        entries = ApiKeys.load(keys_file).entries
        assert {e.name: sorted(map(str, e.roles)) for e in entries} == {
            "demo-viewer": ["viewer"],
            "demo-analyst": ["analyst"],
            "demo-officer": ["officer:restricted"],
        }
        for path in workdir.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert not any(k.encode() in data for k in keys), path
    finally:
        code = run.stop()
    assert code == 0, run.text
    assert run.text.rstrip().endswith("stopped")
    # Gone with the stack: the hashed keys and the broker address tail used.
    assert not (home / ".zoneapp" / "demo").exists()
    assert not (home / ".zoneapp" / "stack.json").exists()
    for path in (home / ".zoneapp").rglob("*"):
        if path.is_file():
            assert not any(k.encode() in path.read_bytes() for k in keys), path


@pytest.mark.usefixtures("prerequisites")
@pytest.mark.parametrize("how", ["flag", "env"])
def test_demo_traces_reach_an_otlp_endpoint(tmp_path: Path, how: str) -> None:
    """`make run OTLP=...` (the flag) or the standard OTEL_* variables: spans arrive."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    argv = [sys.executable, "-m", "zoneapp.stack", "run", "--workdir", str(tmp_path / "wd")]
    argv += ["--web-port", "0", "--rate", "20"]
    with OtlpReceiver() as receiver:
        if how == "flag":
            argv += ["--otlp-endpoint", receiver.endpoint]
            # A traces endpoint left in the shell does not override the flag.
            env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = "http://127.0.0.1:9/v1/traces"
        else:
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
        run = StackRun(argv, cwd=REPO, env=env)
        try:
            block = run.try_it()
            assert block["traces"] == f"OTLP http/protobuf to {receiver.endpoint} as zoneapp-demo"
            spans = receiver.wait_for(
                lambda got: any(s.name == "boundary payments-to-confidential" for s in got), 60
            )
        finally:
            code = run.stop()
    assert code == 0, run.text
    boundary = [s for s in spans if s.name == "boundary payments-to-confidential"]
    assert boundary, f"{len(spans)} spans, none of the boundary"
    assert {s.resource.get("service.name") for s in boundary} == {"zoneapp-demo"}


def test_a_worker_without_the_variable_never_uses_the_demo_keys(tmp_path: Path) -> None:
    """A deployment's worker started next to a demo's work directory, with the stack's
    own variables (what `stack up` prints) but no ZONEAPP_API_KEYS_FILE, accepts none
    of the demo keys; the stack removes the hashed keys when it stops."""
    require_prerequisites()
    workdir = tmp_path / ".zoneapp"  # the default name, in the worker's working directory
    stale = workdir / "demo" / "api-keys.yaml"  # left by a supervisor that was SIGKILLed
    stale.parent.mkdir(parents=True)
    stale.write_text("keys: []\n")
    stack = EmbeddedStack(workdir, EXAMPLE_POLICY, partitions=2).start()
    try:
        assert not stale.exists()
        keys = stack.mint_demo_keys()
        assert keys.path == workdir / "demo" / "api-keys.yaml"
        assert keys.analyst not in repr(keys)
        env = stack.env()
        assert "ZONEAPP_API_KEYS_FILE" not in env
        assert all("demo" not in value for value in env.values())
        port = free_port()
        worker = WorkerProcess(
            {**stack.env(web_port=port), "ZONEAPP_DATADIR": str(tmp_path / "data")},
            log_path=tmp_path / "worker.log",
            web_port=port,
            cwd=tmp_path,
            unset=("ZONEAPP_API_KEYS_FILE",),  # as on a machine where nobody set it
        )
        worker.start()
        stack.adopt(worker)
        worker.wait_ready(WORKER_READY_TIMEOUT)
        for key in keys.all():
            got = subprocess.run(
                ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                 f"Authorization: Bearer {key}", f"http://127.0.0.1:{port}/zones"],
                capture_output=True, text=True, timeout=30, check=True,
            )  # fmt: skip
            assert got.stdout == "401"
        assert "web: 0 API keys" in worker.log_text()
        worker.stop()
        document = yaml.safe_load(keys.path.read_text())
        assert [e["name"] for e in document["keys"]] == [
            "demo-viewer",
            "demo-analyst",
            "demo-officer",
        ]
    finally:
        stack.stop()
    assert not (workdir / "demo").exists()
