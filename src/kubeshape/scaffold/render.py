"""Render the CI files from the Jinja2 templates beside this module."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import jinja2


@functools.cache
def _env() -> jinja2.Environment:
    """The template environment (built on first use: Jinja2 stays out of other commands' start-up).

    GitHub expressions are ``${{ ... }}``: the templates use [= ... =] and [% ... %] so that they stay as written.
    """
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("kubeshape", "scaffold/templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        variable_start_string="[=",
        variable_end_string="=]",
        block_start_string="[%",
        block_end_string="%]",
        comment_start_string="[#",
        comment_end_string="#]",
    )


@dataclass(frozen=True, slots=True)
class CiFile:
    """One file ``init ci`` writes: where (relative to the repository root) and from which template."""

    platform: str
    path: str
    template: str


GITHUB = CiFile("GitHub Actions", ".github/workflows/kubeshape.yml", "github-workflow.yml.j2")
GITLAB = CiFile("GitLab CI", ".gitlab-ci.yml", "gitlab-ci.yml.j2")


@dataclass(frozen=True, slots=True)
class Settings:
    """What the templates are filled with."""

    version: str  # the kubeshape release CI installs
    branch: str  # the branch releases are made from (GitHub; GitLab uses the project's default branch)
    python: str = "3.12"


def render(ci_file: CiFile, settings: Settings) -> str:
    """The text of ``ci_file`` for ``settings``."""
    return _env().get_template(ci_file.template).render(
        version=settings.version, branch=settings.branch, python=settings.python)
