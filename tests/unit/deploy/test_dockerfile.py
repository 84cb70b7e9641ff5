"""deploy/Dockerfile: pinned base, SoftHSM2, the project, and the paths compose relies on."""

from __future__ import annotations

import re
import shlex
from pathlib import PurePosixPath
from typing import Any

import pytest

from .conftest import DEPLOY, ROOT

DOCKERFILE = DEPLOY / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    result: list[tuple[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, args = line.partition(" ")
            result.append((keyword.upper(), " ".join(args.split())))
    return result


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (k, _) in enumerate(steps) if k == "FROM")
    return steps[last_from:]


def copies(stage: list[tuple[str, str]]) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY without --from."""
    result = []
    for keyword, args in stage:
        if keyword == "COPY" and not args.startswith("--from"):
            *sources, dest = args.split()
            result.append((sources, dest))
    return result


def env_of_image() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in final_stage():
        if keyword == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def test_every_base_image_is_pinned_python_3_11_slim() -> None:
    bases = [args.split()[0] for keyword, args in instructions() if keyword == "FROM"]
    assert bases
    for base in bases:
        image, _, tag = base.partition(":")
        assert image == "python" and re.fullmatch(r"3\.11\.\d+-slim(-\w+)?", tag), base


def test_installs_softhsm2_in_the_runtime_image() -> None:
    runs = " ".join(args for keyword, args in final_stage() if keyword == "RUN")
    assert re.search(r"apt-get install [^&]*\bsofthsm2\b", runs)
    assert "/usr/lib/softhsm/libsofthsm2.so" in runs  # the module path ZONEAPP_KEYS names


def test_installs_the_project() -> None:
    runs = [args for keyword, args in instructions() if keyword == "RUN"]
    assert any(re.search(r"pip (wheel|install)\b.* \.$", r) for r in runs), "pip … . missing"
    final_runs = " ".join(args for keyword, args in final_stage() if keyword == "RUN")
    assert re.search(r"pip install .*\bzoneapp\b", final_runs)
    copied = {s for sources, _ in copies(instructions()) for s in sources}
    assert {"pyproject.toml", "zoneapp", "agents", "tables"} <= copied


def test_copy_sources_exist() -> None:
    for sources, _ in copies(instructions()):
        for source in sources:
            assert (ROOT / source).exists(), source


def test_runs_the_worker_as_a_non_root_user() -> None:
    stage = dict(final_stage())
    assert stage["USER"] not in ("root", "0")
    assert "faust" in stage["CMD"] and '"-A", "zoneapp", "worker"' in stage["CMD"]
    assert "/opt/zoneapp/bin/entrypoint.py" in stage["ENTRYPOINT"]


def test_paths_compose_uses_exist_in_the_image(services: dict[str, dict[str, Any]]) -> None:
    destinations: set[str] = set()
    for sources, dest in copies(final_stage()):
        for source in sources:
            # "COPY a b/" copies into b/; "COPY a b" (one source) copies to b.
            into = dest.endswith("/") or len(sources) > 1
            destinations.add(
                str(PurePosixPath(dest) / PurePosixPath(source).name) if into else dest
            )
    for name in ("hsm-init", "topic-init"):
        script = services[name]["command"][1]
        assert script in destinations, f"{name} runs {script}, not copied into the image"
    env = env_of_image()
    assert env["SOFTHSM2_CONF"] in destinations
    tokendir = re.search(
        r"^directories\.tokendir\s*=\s*(\S+)",
        (DEPLOY / "softhsm2.conf").read_text(encoding="utf-8"),
        re.MULTILINE,
    )
    assert tokendir
    runs = " ".join(args for keyword, args in final_stage() if keyword == "RUN")
    assert f"mkdir -p {tokendir.group(1)}" in runs  # so a fresh named volume is owned by zoneapp


@pytest.mark.parametrize("ignored", [".venv", ".git", "deploy/secrets", ".zoneapp"])
def test_build_context_leaves_out_local_state_and_secrets(ignored: str) -> None:
    patterns = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").split()
    assert ignored in patterns or f"**/{ignored}" in patterns
