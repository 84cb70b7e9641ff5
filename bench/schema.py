"""Ingress schema validators on the bench payment records: ``python -m bench.schema``.

Measures jsonschema-rs (what zoneapp uses, zoneapp.policy.ingress) and, when it is
installed (``pip install fastjsonschema==2.22.3``; not a dependency), fastjsonschema, on
the shipped payment schema (deploy/policies/schemas/payment.schema.json) and the records
``python -m bench`` produces (``make_payment``, seed 7): compile time, microseconds per
valid record, and per invalid record including its first error. fastjsonschema knows
drafts up to 7, so it gets the same schema declared as draft 7 (nothing in it differs).
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson

from zoneapp.stack.demo import make_payment

SCHEMA = Path(__file__).resolve().parents[1] / "deploy/policies/schemas/payment.schema.json"


def _per_record_us(check: Callable[[Any], object], docs: Sequence[Any], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        for doc in docs:
            check(doc)
        runs.append((time.perf_counter() - started) / len(docs) * 1e6)
    return statistics.median(runs)


def figures(records: int = 2000, seed: int = 7, repeat: int = 5) -> dict[str, dict[str, float]]:
    schema = json.loads(SCHEMA.read_text())
    rng = random.Random(seed)
    docs = [orjson.loads(json.dumps(make_payment(rng)[1])) for _ in range(records)]
    bad = [dict(d, amount=-1) for d in docs[: max(1, records // 4)]]
    out: dict[str, dict[str, float]] = {}

    started = time.perf_counter()
    rs = jsonschema_rs.validator_for(schema, validate_formats=True, offline=True)
    compiled = (time.perf_counter() - started) * 1e3
    assert all(rs.is_valid(d) for d in docs) and not any(rs.is_valid(d) for d in bad)

    def rs_first_error(doc: Any) -> object:
        return None if rs.is_valid(doc) else next(iter(rs.iter_errors(doc)))

    out["jsonschema-rs"] = {
        "compile_ms": compiled,
        "valid_us": _per_record_us(rs.is_valid, docs, repeat),
        "invalid_us": _per_record_us(rs_first_error, bad, repeat),
    }
    try:
        fj: Any = importlib.import_module("fastjsonschema")
    except ImportError:
        return out
    draft7 = {**schema, "$schema": "http://json-schema.org/draft-07/schema#"}
    started = time.perf_counter()
    validate = fj.compile(draft7)
    compiled = (time.perf_counter() - started) * 1e3

    def fj_check(doc: Any) -> bool:
        try:
            validate(doc)
        except fj.JsonSchemaValueException:
            return False
        return True

    assert all(fj_check(d) for d in docs) and not any(fj_check(d) for d in bad)
    out["fastjsonschema"] = {
        "compile_ms": compiled,
        "valid_us": _per_record_us(fj_check, docs, repeat),
        "invalid_us": _per_record_us(fj_check, bad, repeat),
    }
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    args = parser.parse_args(argv)
    for name, f in figures(args.records).items():
        print(
            f"{name:<15} compile {f['compile_ms']:6.2f} ms   valid {f['valid_us']:6.2f} us/record"
            f"   invalid (first error) {f['invalid_us']:6.2f} us/record"
        )


if __name__ == "__main__":
    main()
