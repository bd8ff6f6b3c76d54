"""The on-disk layout of one run and the commands that prepare it."""

from __future__ import annotations

import os
import shlex
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

#: Environment variables of the server that a run's processes must not see.
_PRIVATE_ENV_PREFIXES = ("RUNPLANE_",)


@dataclass(frozen=True, slots=True)
class Workspace:
    root: Path
    source: Path
    junit_path: Path
    home: Path

    @classmethod
    def create(cls, base: Path, run_id: int, junit_path: str | None) -> Workspace:
        root = (base / f"run-{run_id}-{uuid.uuid4().hex[:8]}").resolve()
        root.mkdir(parents=True)
        source = root / "src"
        if junit_path:
            junit = source / junit_path
        else:
            junit = root / "reports" / "junit.xml"
            junit.parent.mkdir()
        home = root / "home"
        (home / "tmp").mkdir(parents=True)
        return cls(root=root, source=source, junit_path=junit, home=home)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def remove_stale(base: Path, run_id: int) -> None:
    """Workspaces a crashed worker left behind for ``run_id``."""
    for path in base.glob(f"run-{run_id}-*"):
        shutil.rmtree(path, ignore_errors=True)


def clone_command(repo_url: str, target: Path) -> str:
    return f"git clone --quiet --no-checkout -- {shlex.quote(repo_url)} {shlex.quote(str(target))}"


def has_commit_command(commit_sha: str) -> str:
    return f"git cat-file -e {shlex.quote(commit_sha + '^{commit}')}"


def checkout_command(commit_sha: str) -> str:
    return f"git -c advice.detachedHead=false checkout --quiet --detach {shlex.quote(commit_sha)}"


def test_command(template: str, selected: Sequence[str] | None, placeholder: str) -> str:
    """The project's test command with ``placeholder`` replaced by the selected test names."""
    names = " ".join(shlex.quote(n) for n in selected) if selected else ""
    return template.replace(placeholder, names)


#: Variables of the server's environment a build or test may see; everything else
#: (cloud credentials, database URLs, tokens) stays with the server.
INHERITED_ENV = ("PATH", "LANG", "LANGUAGE", "TZ", "TERM", "USER", "LOGNAME", "SHELL")


def checkout_environment() -> dict[str, str]:
    """For git: the server's environment (credential helpers, SSH agent) minus our settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_PRIVATE_ENV_PREFIXES)}
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


def run_environment(
    project_env: Mapping[str, str], extra: Mapping[str, str], home: Path
) -> dict[str, str]:
    """For the build and test commands: an allowlist, a private HOME, the project's variables."""
    env = {k: v for k, v in os.environ.items() if k in INHERITED_ENV or k.startswith("LC_")}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["HOME"] = str(home)
    env["TMPDIR"] = str(home / "tmp")
    env.update(project_env)
    env.update(extra)
    return env


def find_artifacts(source: Path, patterns: Sequence[str], limit: int) -> list[tuple[str, Path]]:
    """Files under ``source`` matching ``patterns`` (never outside it), at most ``limit``."""
    root = source.resolve()
    found: dict[str, Path] = {}
    for pattern in patterns:
        for path in root.glob(pattern):
            real = path.resolve()
            if real.is_file() and real.is_relative_to(root):
                found.setdefault(str(path.relative_to(root)), real)
                if len(found) >= limit:
                    return sorted(found.items())
    return sorted(found.items())
