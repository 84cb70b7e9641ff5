"""The zone policy: declared as YAML, validated and compiled once."""

from zoneapp.policy.compiled import CompiledBoundary, CompiledPolicy, CompiledRule, RuleNode, Zone
from zoneapp.policy.errors import ParamError, PolicyError
from zoneapp.policy.levels import Level
from zoneapp.policy.loader import compile_policy_text, load_policy, parse_path

__all__ = [
    "CompiledBoundary",
    "CompiledPolicy",
    "CompiledRule",
    "Level",
    "ParamError",
    "PolicyError",
    "RuleNode",
    "Zone",
    "compile_policy_text",
    "load_policy",
    "parse_path",
]
