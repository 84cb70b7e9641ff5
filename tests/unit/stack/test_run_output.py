"""What `stack run` prints and passes to its worker: the Try it block, the worker's
environment (demo keys file, OTLP), and records made inert for the terminal."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from zoneapp.stack.__main__ import (
    DemoToken,
    build_parser,
    demo_token,
    run_worker_env,
    try_it_lines,
)
from zoneapp.stack.demo_keys import DemoKeys
from zoneapp.stack.watch import Example, inert, render_example

REPO = Path(__file__).resolve().parents[3]
KEYS = DemoKeys(Path("/wd/demo/api-keys.yaml"), "zk_viewer", "zk_analyst", "zk_officer")
TOKEN = DemoToken("tok_abcdefghijklmnopqrstuvwxyzabcdef", "acme-retail", "c.p", "customer.email")


def block(token: DemoToken | None = TOKEN, workdir: str = ".zoneapp") -> dict[str, str]:
    lines = try_it_lines(KEYS, 6066, token, workdir=workdir, tracing="off (x)")
    assert lines[0].startswith("Try it")
    out = {}
    for line in lines[1:]:
        label, command = line[2:14].strip(), line[14:]
        if label:
            out[label] = command
    return out


def test_curl_lines_split_into_curl_a_bearer_header_and_the_url() -> None:
    lines = block()
    expected = {
        "zones": ("zk_viewer", "/zones"),
        "violations": ("zk_analyst", "/violations?limit=5"),
        "token": ("zk_analyst", f"/tokens/{TOKEN.token}"),
    }
    for label, (key, path) in expected.items():
        argv = shlex.split(lines[label])
        assert argv == [
            "curl",
            "-s",
            "-H",
            f"Authorization: Bearer {key}",
            "http://127.0.0.1:6066" + path,
        ]
    argv = shlex.split(lines["detokenize"])
    assert argv[:4] == ["curl", "-s", "-H", "Authorization: Bearer zk_officer"]
    url = urlsplit(argv[4])
    assert url.path == "/detokenize"
    assert parse_qs(url.query) == {
        "zone": ["restricted"],
        "tenant": ["acme-retail"],
        "token": [TOKEN.token],
    }
    assert lines["zone map"] == "http://127.0.0.1:6066/#key=zk_analyst"


def test_tail_commands_name_the_workdir_only_when_it_is_not_the_default() -> None:
    assert shlex.split(block()["audit"])[-3:] == ["zoneapp.stack", "tail", "audit.access"]
    custom = shlex.split(block(workdir="/tmp/my stack")["audit"])
    assert custom[-2:] == ["--workdir", "/tmp/my stack"]
    assert shlex.split(block()["peek"])[-1] == "confidential.payments"


def test_without_a_token_the_block_says_why_and_has_no_token_commands() -> None:
    lines = block(token=None)
    assert "detokenize" not in lines and "curl" not in lines["token"]
    assert "--rate" in lines["token"]


def test_card_tokens_with_separators_are_quoted_in_the_path() -> None:
    card = DemoToken("4111 11tk abcd 1111", "t", "c.p", "card_number")
    argv = shlex.split(block(token=card)["token"])
    assert argv[-1].endswith("/tokens/4111%2011tk%20abcd%201111")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            {"tenant_id": "acme", "customer": {"email": "tok_" + "a" * 32}},
            ("tok_" + "a" * 32, "acme"),
        ),
        ({"tenant_id": "acme", "customer": {"email": "olivia@example.com"}}, None),
        ({"tenant_id": "acme", "customer": {"email": "tok_" + "a" * 31 + "'"}}, None),
        ({"tenant_id": "a'; rm -rf ~; '", "customer": {"email": "tok_" + "a" * 32}}, None),
        ({"tenant_id": "\x1b[2J", "customer": {"email": "tok_" + "a" * 32}}, None),
        ({"customer": {"email": "tok_" + "a" * 32}}, None),
        ({"tenant_id": "acme"}, None),
        ([], None),
    ],
)
def test_demo_token_comes_from_a_tokenized_email(
    value: object, expected: tuple[str, str] | None
) -> None:
    example = Example("confidential.payments", 0, 0, None, json.dumps(value).encode())
    found = demo_token(example)
    assert (found.token, found.tenant) == expected if found else expected is None
    assert demo_token(Example("t", 0, 0, None, b"\xff not json")) is None


def test_worker_env_points_at_the_demo_keys_and_names_the_demo_service() -> None:
    env, unset = run_worker_env({"ZONEAPP_BROKER": "b"}, KEYS.path, otlp_endpoint=None, environ={})
    assert env == {
        "ZONEAPP_BROKER": "b",
        "ZONEAPP_API_KEYS_FILE": "/wd/demo/api-keys.yaml",
        "OTEL_SERVICE_NAME": "zoneapp-demo",
    }
    assert unset == ()  # OTEL_* from the shell reach the worker unchanged (inherited)


def test_the_otlp_flag_wins_over_a_traces_endpoint_from_the_shell() -> None:
    shell = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://elsewhere:4318/v1/traces"}
    env, unset = run_worker_env({}, KEYS.path, otlp_endpoint="http://jaeger:4318", environ=shell)
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
    assert unset == ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",)


@pytest.mark.parametrize(
    "environ",
    [{"OTEL_SERVICE_NAME": "mine"}, {"OTEL_RESOURCE_ATTRIBUTES": "team=a,service.name=mine"}],
)
def test_a_service_name_of_the_user_is_kept(environ: dict[str, str]) -> None:
    env, _ = run_worker_env({}, KEYS.path, otlp_endpoint=None, environ=environ)
    assert "OTEL_SERVICE_NAME" not in env


def test_make_run_passes_otlp_as_the_flag() -> None:
    def dry(*args: str) -> str:
        result = subprocess.run(
            ["make", "-n", "-C", str(REPO), "run", *args],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return next(ln.strip() for ln in result.stdout.splitlines() if "zoneapp.stack run" in ln)

    assert dry().endswith("-m zoneapp.stack run")
    assert dry("OTLP=http://localhost:4318").endswith(
        "-m zoneapp.stack run --otlp-endpoint http://localhost:4318"
    )
    args = build_parser().parse_args(["run", "--otlp-endpoint", "http://localhost:4318"])
    assert args.otlp_endpoint == "http://localhost:4318"


def test_tail_options_parse() -> None:
    args = build_parser().parse_args(["tail", "audit.access"])
    assert (args.topic, args.workdir, args.broker, args.start) == (
        "audit.access",
        ".zoneapp",
        None,
        "beginning",
    )
    assert not args.no_follow and args.max_records is None
    args = build_parser().parse_args(["tail", "t", "--from", "end", "--no-follow", "-n", "3"])
    assert (args.start, args.no_follow, args.max_records) == ("end", True, 3)


@pytest.mark.parametrize(
    "text",
    ["\x1b[31mred", "\x9b31m", "\u202egnp.exe", "bell\x07", "a\u2028b", "\x00nul"],
)
def test_records_are_inert_for_the_terminal(text: str) -> None:
    raw = text.encode()
    cases = [
        Example("t", 0, 1, raw, json.dumps({"v": text}, ensure_ascii=False).encode()),
        Example("t", 0, 1, raw, raw, [("h" + text, raw)]),
    ]
    for example in cases:
        shown = render_example(example, max_chars=None)
        assert all(ch == "\n" or ch.isprintable() for ch in shown), repr(shown)
    assert inert(text) != text and "\\u" in inert(text)


def test_render_shows_key_headers_value_and_time() -> None:
    example = Example(
        "audit.access", 2, 7, b'"id-1"', b'{"who": "demo-officer"}', [("h", b"v")], 1764583200123
    )
    assert render_example(example).splitlines() == [
        "audit.access [partition 2, offset 7]  2025-12-01T10:00:00.123Z",
        '  key:     "id-1"',
        "  headers: h=v",
        "  value:   {",
        '    "who": "demo-officer"',
        "  }",
    ]
    long = Example("t", 0, 0, None, json.dumps({"x": "y" * 5000}).encode())
    assert "(truncated)" in render_example(long) and "(truncated)" not in render_example(
        long, max_chars=None
    )
