"""Access tiers: who may see what, checked where the data is produced, not in the widgets.

Three tiers, each adding to the one before:

- ``public``: aggregate counts only (a cohort's count and attrition);
- ``registered``: characterisation (Table 1, comparisons, age-sex pyramids, distributions);
- ``controlled``: row-level pseudonymised data (``CohortResult.members`` and ``to_table``,
  dataset frames, exports, genotypes, the genomics link and GWAS).

A function that needs a tier calls :func:`require`, which raises
:class:`~workbench.errors.AccessDenied` (naming the tier needed, the session's tier and
what to do) and writes an ``access.denied`` record to the audit trail.

The session, first that applies:

1. explicit: ``with Session("kim", "registered"):`` or ``use(Session(...))``. It is a
   context variable: a thread started with ``contextvars.copy_context().run`` (as the
   widgets do for their worker threads) sees the session of the code that started it;
2. the environment: ``WORKBENCH_USER``, ``WORKBENCH_TIER``, ``WORKBENCH_PROJECT`` (when
   any is set; a missing one takes its default);
3. the default: the OS login as user, no project, and the tier **controlled on a
   synthetic release** (its manifest says ``"kind": "synthetic"``, as ``workbench release
   synth`` writes, or ``"fixture"``, hand-made test rows: nobody real is in it, so demos,
   notebooks and tests work unchanged) and **public on any other release** (an OMOP load
   or a real release gives counts only until a tier is set).

A project (:mod:`workbench.project`) caps the tier: the effective tier is the lower of
the session's and its project's.

>>> s = Session("kim", "registered")
>>> with s:
...     current().tier
'registered'
>>> current({"kind": "synthetic"}).tier in TIERS     # env or default, outside the block
True
>>> rank("public") < rank("registered") < rank("controlled")
True
"""

from __future__ import annotations

import contextlib
import contextvars
import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from workbench.errors import AccessDenied, AuditError, UsageError

if TYPE_CHECKING:
    from workbench.catalog import Catalog
    from workbench.project import Project

Tier = Literal["public", "registered", "controlled"]
TIERS: tuple[Tier, ...] = ("public", "registered", "controlled")
Origin = Literal["explicit", "environment", "default"]

ENV_USER, ENV_TIER, ENV_PROJECT = "WORKBENCH_USER", "WORKBENCH_TIER", "WORKBENCH_PROJECT"
SYNTHETIC_KINDS = ("synthetic", "fixture")     # manifest kinds with nobody real in them

_CURRENT: contextvars.ContextVar[Session | None] = contextvars.ContextVar(
    "workbench_session", default=None)

_WHAT_A_TIER_GIVES = {
    "public": "counts and attrition",
    "registered": "counts, attrition and characterisation (Table 1, distributions)",
    "controlled": "row-level data (members, datasets, exports, genotypes, GWAS)",
}


def rank(tier: str) -> int:
    """0, 1, 2 for public, registered, controlled."""
    return TIERS.index(tier)  # type: ignore[arg-type]


def _check_tier(tier: object, where: str) -> Tier:
    if tier not in TIERS:
        raise UsageError(f"{where}: unknown access tier {tier!r}",
                         hint="use one of " + ", ".join(TIERS))
    return tier  # type: ignore[return-value]


@dataclass(frozen=True)
class Session:
    """A user working at a tier, optionally inside a project (its folder or file).

    Use as a context manager, or activate with :func:`use`. ``origin`` says where the
    session came from (explicit, environment, default); it is set by :func:`current`.
    """

    user: str
    tier: Tier
    project: str | Path | None = None
    origin: Origin = field(default="explicit", compare=False)
    _tokens: list[contextvars.Token] = field(default_factory=list, repr=False,
                                             compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.user, str) or not self.user.strip():
            raise UsageError(f"a session needs a user name, got {self.user!r}")
        _check_tier(self.tier, f"session of {self.user!r}")

    def __enter__(self) -> Session:
        self._tokens.append(_CURRENT.set(self))
        return self

    def __exit__(self, *exc: object) -> None:
        _CURRENT.reset(self._tokens.pop())

    def describe(self) -> str:
        """``user 'kim' (registered, project ldl-lab; from WORKBENCH_*)``"""
        where = {"explicit": "", "environment": "; from WORKBENCH_*",
                 "default": "; the default session"}[self.origin]
        proj = f", project {self.project}" if self.project else ""
        return f"user {self.user!r} ({self.tier}{proj}{where})"


class _Activation:
    """What :func:`use` returns: already active; leaving a ``with`` block restores."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._token = _CURRENT.set(session)

    def __enter__(self) -> Session:
        return self.session

    def __exit__(self, *exc: object) -> None:
        _CURRENT.reset(self._token)


def use(session: Session) -> _Activation:
    """Make ``session`` the current one: for the rest of the context (a notebook), or
    until the end of a ``with use(session):`` block."""
    if not isinstance(session, Session):
        raise UsageError(f"use() takes an access.Session, got {type(session).__name__}")
    return _Activation(session)


def is_synthetic(release: Mapping[str, Any] | None) -> bool:
    """Whether a release (its manifest, or ``{"kind": ...}``) is synthetic (or a test
    fixture): see :data:`SYNTHETIC_KINDS`."""
    return bool(release) and release.get("kind") in SYNTHETIC_KINDS  # type: ignore[union-attr]


def default_tier(release: Mapping[str, Any] | None) -> Tier:
    """controlled on a synthetic release, public on any other (or an unknown) release."""
    return "controlled" if is_synthetic(release) else "public"


def _login() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):   # no login name (some containers)
        return f"uid-{os.getuid()}"


def current(release: Mapping[str, Any] | None = None) -> Session:
    """The session in force: explicit, else from the environment, else the default for
    ``release`` (a manifest; see the module docstring)."""
    explicit = _CURRENT.get()
    if explicit is not None:
        return explicit
    user, tier, project = (os.environ.get(k) or None for k in (ENV_USER, ENV_TIER, ENV_PROJECT))
    origin: Origin = "environment" if user or tier or project else "default"
    if tier is not None:
        _check_tier(tier, f"${ENV_TIER}")
    return Session(user or _login(), tier or default_tier(release), project, origin)


def project_of(session: Session) -> Project | None:
    """The session's project (loaded and validated), None without one; refuses a user
    the project does not list."""
    if session.project is None:
        return None
    from workbench.project import load_project

    return check_member(session, load_project(session.project))


def check_member(session: Session, project: Project) -> Project:
    """``project``, if it lists no users or lists the session's; else AccessDenied."""
    if project.users is not None and session.user not in project.users:
        raise AccessDenied(f"{session.describe()} is not a member of project "
                           f"{project.name!r} ({project.file})",
                           hint="ask the project's owner to add you to its users, or work "
                                "outside the project")
    return project


def effective_tier(session: Session, *projects: Project | None) -> Tier:
    """The session's tier capped by each project's tier."""
    caps = [p.tier for p in projects if p is not None]
    return min([session.tier, *caps], key=rank)


def require(tier: Tier, what: str, *, release: Mapping[str, Any] | None = None,
            catalog: Catalog | None = None, project: Project | None = None) -> Session:
    """The current session if it has ``tier`` (capped by its project, the catalog's and
    ``project``: the project of the catalog a result came from); else record the refusal
    in the audit trail and raise AccessDenied.

    ``what`` names the action in the message ("cohort members", "Table 1"); ``release``
    (a manifest, or ``{"release_id", "kind"}``) or ``catalog`` picks the default tier.

    >>> with Session("lee", "public"):
    ...     try:
    ...         require("registered", "Table 1", release={"kind": "synthetic"})
    ...     except AccessDenied as e:
    ...         print(e.message)
    Table 1 needs the registered tier; this session is public: user 'lee' (public)
    """
    _check_tier(tier, what)
    if release is None and catalog is not None:
        release = catalog.manifest
    session = current(release)
    projects = (project_of(session), getattr(catalog, "project", None), project)
    have = effective_tier(session, *projects)
    if rank(have) >= rank(tier):
        return session
    capped = [p for p in projects if p is not None and rank(p.tier) < rank(tier)]
    if capped:
        hint = (f"project {capped[0].name!r} caps its sessions at {capped[0].tier} "
                f"({capped[0].file}); ask the data access committee to raise the project's "
                f"tier, or work outside the project")
    else:
        hint = (f"the {have} tier gives {_WHAT_A_TIER_GIVES[have]}. If you are approved "
                f"for {tier} access, start the session at that tier: "
                f'`with access.Session(user, "{tier}"):` or {ENV_TIER}={tier}')
    err = AccessDenied(f"{what} needs the {tier} tier; this session is {have}: "
                       f"{session.describe()}", hint=hint)
    from workbench import audit

    with contextlib.suppress(AuditError):     # the refusal stands either way
        audit.record("access.denied", release=release, session=session, tier=have,
                     detail={"asked": what, "needs": tier})
    raise err
