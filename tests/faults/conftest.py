"""The fault suite runs on a stack of its own per scenario: the integration fixture."""

from tests.integration.conftest import private_stack

__all__ = ["private_stack"]
