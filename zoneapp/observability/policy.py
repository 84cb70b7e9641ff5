"""The policy gauges of ``GET /metrics``: per worker, because each worker reloads its own.

A refused reload leaves the old policy active and raises
``zoneapp_policy_reload_failed`` to 1 until a reload of that worker's file succeeds, so an
alert on it catches a bad policy pushed to running workers. Labels hold the worker's URL
and the policy's own version and SHA-256 (policy text, never record data).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from zoneapp.observability.metrics import _labels

_GAUGES: tuple[tuple[str, str, str, Callable[[Mapping[str, Any]], int]], ...] = (
    (
        "zoneapp_policy_reload_failed",
        "gauge",
        "1 while the last reload of this worker's policy file was refused (the previous "
        "policy stays active).",
        lambda w: int(bool(w.get("reload_failed"))),
    ),
    (
        "zoneapp_policy_reload_failures_total",
        "counter",
        "Reloads and promotes of the policy this worker refused.",
        lambda w: int(w.get("reload_failures", 0)),
    ),
    (
        "zoneapp_policy_candidate_failures_total",
        "counter",
        "Candidate policy files this worker refused to shadow.",
        lambda w: int(w.get("candidate_failures", 0)),
    ),
    (
        "zoneapp_policy_reloads_total",
        "counter",
        "Policy generations this worker switched to after start-up.",
        lambda w: int(w.get("reloads_applied", 0)),
    ),
)


def render(workers: Iterable[Mapping[str, Any]]) -> str:
    rows = sorted(workers, key=lambda w: str(w.get("worker", "")))
    lines: list[str] = []
    for metric, kind, help_text, value in _GAUGES:
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} {kind}"]
        lines += [f"{metric}{_labels({'worker': str(w['worker'])})} {value(w)}" for w in rows]
    for metric, key, help_text in (
        ("zoneapp_policy_info", "active", "The active policy of each worker (value 1)."),
        ("zoneapp_policy_candidate_info", "candidate", "The shadowed candidate (value 1)."),
    ):
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge"]
        for w in rows:
            gen = w.get(key)
            if isinstance(gen, Mapping):
                labels = {
                    "worker": str(w["worker"]),
                    "version": str(gen.get("version", "")),
                    "sha256": str(gen.get("sha256", "")),
                    "generation": str(gen.get("generation", "")),
                }
                lines.append(f"{metric}{_labels(labels)} 1")
    return "\n".join(lines) + "\n"
