"""Errors of the cohort library: a definition that is wrong says where (its JSON path).

>>> print(DefinitionError("window start 5 is after its end 1",
...                       path="inclusion_rules[0].group.items[1].window"))
inclusion_rules[0].group.items[1].window: window start 5 is after its end 1
"""

from __future__ import annotations

from workbench.errors import WorkbenchError


class DefinitionError(WorkbenchError):
    """A cohort definition that cannot be run: unknown concept, bad window, missing table."""

    def __init__(self, message: str, *, path: str = "", hint: str | None = None) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message, hint=hint)
