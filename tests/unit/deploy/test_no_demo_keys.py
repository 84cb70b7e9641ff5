"""A real deployment never gets the demo API keys of `python -m zoneapp.stack run`.

The keys exist only in the embedded stack's work directory while it runs, and only
`run` names them (ZONEAPP_API_KEYS_FILE in its own worker's environment). These tests
check the other side: nothing in deploy/ runs the embedded stack, names its work
directory or its demo keys, or copies them into the image, and a worker has no
default keys file it could find them through.
"""

from __future__ import annotations

import re

from zoneapp.settings import Settings

from .conftest import DEPLOY, ROOT
from .test_compose import Services, env_of

MARKERS = ("zoneapp.stack", ".zoneapp", "demo/api-keys", "api-keys.yaml", "demo-analyst")


def test_no_deploy_file_runs_the_embedded_stack_or_names_its_keys() -> None:
    ignore = DEPLOY / "Dockerfile.dockerignore"
    assert ".zoneapp" in ignore.read_text(encoding="utf-8").split()  # kept out of the context
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file() and p != ignore):
        text = path.read_text(encoding="utf-8", errors="replace")
        # provision is the one stack module meant for a real HSM (see the README).
        text = text.replace("zoneapp.stack.provision", "")
        for marker in MARKERS:
            assert marker not in text, (path.relative_to(ROOT), marker)


def test_the_image_copies_only_the_sources_and_deploy_files() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    sources = [
        part
        for line in re.findall(r"^COPY (?!--from)(.+)$", dockerfile, re.MULTILINE)
        for part in line.split()[:-1]
    ]
    assert sources, "no COPY lines found"
    for source in sources:
        assert source not in (".", "./") and not source.startswith(".zoneapp"), source
        assert source.split("/")[0] in {
            "pyproject.toml", "README.md", "zoneapp", "agents", "tables", "deploy",
        }, source  # fmt: skip


def test_no_worker_service_sets_an_api_keys_file_into_a_stack_workdir(services: Services) -> None:
    assert services
    for name, service in services.items():
        # env_of reads both compose spellings (a mapping or a KEY=VALUE list): a list
        # must not slip past as "no variable".
        value = env_of(service).get("ZONEAPP_API_KEYS_FILE", "")
        assert ".zoneapp" not in value and "demo" not in value, name


def test_a_worker_without_the_variable_has_no_keys_file() -> None:
    assert Settings.from_env({}).api_keys_file is None
    assert Settings.from_env({"ZONEAPP_API_KEYS_FILE": ""}).api_keys_file is None
