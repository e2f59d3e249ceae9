"""The workbench's errors: one base class, a few subclasses, each message with a hint.

>>> err = ReleaseError("table 'person' is missing", hint="rebuild the release")
>>> print(err)
table 'person' is missing
Hint: rebuild the release
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class of every error the workbench raises for bad input or bad data."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message}\nHint: {hint}")


class UsageError(WorkbenchError):
    """A bad argument to a command or function (negative size, unwritable path...)."""


class ReleaseError(WorkbenchError):
    """A release on disk does not match its manifest (missing file, checksum, schema)."""


class AccessDenied(WorkbenchError):
    """The session's access tier (or its project's grants) does not allow what was asked.

    The message names what was asked, the tier it needs and the session's tier; the hint
    says what to do. ``path`` is the JSON path in a definition, when one is to blame.
    """

    def __init__(self, message: str, *, hint: str | None = None, path: str = "") -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message, hint=hint)


class ProjectError(UsageError):
    """A project file that cannot be used (names the file, the field and what is wrong)."""


class AuditError(WorkbenchError):
    """The audit trail cannot be written (the action it would record is refused)."""


class EnvironmentProblem(WorkbenchError):
    """Something the machine lacks (Java, memory, a package)."""


class GenotypeInputError(UsageError):
    """A VCF or PLINK file that cannot be read as genotypes (names the file and line)."""


class PhenotypeInputError(UsageError):
    """A phenotype table (TSV, CSV, Parquet) that cannot be used as given (names the column)."""
