"""What a browser run hands its agent and how the agent's answer is read.

The agent is a command (the built-in ``python -m runplane.agent`` or the operator's
``RUNPLANE_AGENT_COMMAND``) that reads the run input JSON on stdin and writes the
output JSON on stdout; it runs in its own session like any test command, so cancel
and time limits kill the browser with it. See ``docs/browser-agent.md``.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runplane.agent import agent_argv
from runplane.store.models import BrowserRun, Run

#: Screenshots kept per run at most, and the largest one kept.
MAX_SCREENSHOTS = 50
MAX_SCREENSHOT_BYTES = 20 * 1024 * 1024
#: Names a screenshot may have (they become URL path segments).
SCREENSHOT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
#: Longest text field kept from the output.
MAX_TEXT = 20_000
#: The largest output document read from the agent.
MAX_OUTPUT_BYTES = 5 * 1024 * 1024


class AgentOutputInvalid(Exception):
    """The agent wrote no output, or not a TestOutput document."""


def agent_command(configured: str) -> str:
    return configured or shlex.join(agent_argv())


def agent_input(
    run: Run,
    browser: BrowserRun,
    *,
    credentials: list[dict[str, str]] | None,
    screenshot_dir: Path,
    step_timeout_ms: int,
    network: str,
) -> dict[str, Any]:
    data = browser.input
    return {
        "runId": run.uuid,
        "featureName": str(data.get("title") or "Prompt run"),
        "prompt": data.get("prompt"),
        "steps": data.get("steps"),
        "targetUrl": browser.target_url,
        "credentials": credentials,
        "screenshotDir": str(screenshot_dir),
        "stepTimeoutMs": step_timeout_ms,
        "network": network,
    }


@dataclass(frozen=True, slots=True)
class AgentResult:
    #: The TestOutput document, screenshots named by file name.
    output: dict[str, Any]
    passed: bool
    #: Screenshot files to keep, by the name the output uses.
    screenshots: dict[str, Path]


def _screenshot(directory: Path, name: Any) -> Path | None:
    """The file ``name`` refers to, only if it is a plain file name inside ``directory``."""
    if not isinstance(name, str) or not SCREENSHOT_NAME.fullmatch(name):
        return None
    path = (directory / name).resolve()
    if not path.is_relative_to(directory.resolve()) or not path.is_file():
        return None
    if path.stat().st_size > MAX_SCREENSHOT_BYTES:
        return None
    return path


class _Lenient(BaseModel):
    # Any agent may add fields; what we keep must have the documented types.
    model_config = ConfigDict(extra="ignore")


class _Step(_Lenient):
    stepIndex: int = Field(ge=0)
    title: str = Field(max_length=MAX_TEXT)
    status: Literal["passed", "failed"]
    summary: str | None = Field(default=None, max_length=MAX_TEXT)
    error: str | None = Field(default=None, max_length=MAX_TEXT)
    errorCode: str | None = Field(default=None, max_length=100)
    startedAtMs: int | None = None
    completedAtMs: int | None = None


class _Issue(_Lenient):
    name: str = Field(max_length=MAX_TEXT)
    description: str = Field(max_length=MAX_TEXT)
    url: str = Field(max_length=MAX_TEXT)
    type: Literal["issue", "warning"] = "issue"
    severity: int | None = Field(default=None, ge=1, le=5)
    reproductionSteps: list[str] = Field(default_factory=list, max_length=100)
    expectedBehavior: str | None = Field(default=None, max_length=MAX_TEXT)
    actualBehavior: str | None = Field(default=None, max_length=MAX_TEXT)
    screenshotUrl: str | None = None
    tMs: int | None = None


class _Output(_Lenient):
    """The Tester Army TestOutput, as far as runplane stores and shows it."""

    featureName: str = Field(default="", max_length=MAX_TEXT)
    result: Literal["PASS", "FAILED"]
    description: str = Field(default="", max_length=MAX_TEXT)
    screenshots: list[str] = Field(default_factory=list, max_length=MAX_SCREENSHOTS)
    issues: list[_Issue] = Field(default_factory=list, max_length=100)
    steps: list[_Step] = Field(default_factory=list, max_length=1000)


def read_agent_output(path: Path, screenshot_dir: Path) -> AgentResult:
    try:
        if path.stat().st_size > MAX_OUTPUT_BYTES:
            raise AgentOutputInvalid("the output document is too large")
        parsed = _Output.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise AgentOutputInvalid(f"no readable output ({exc})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "document"
        raise AgentOutputInvalid(f"not a TestOutput document ({where}: {first['msg']})") from None
    doc = parsed.model_dump(exclude_none=True)
    kept: dict[str, Path] = {}

    def keep(name: Any) -> str | None:
        found = _screenshot(screenshot_dir, name)
        if found is None or (name not in kept and len(kept) >= MAX_SCREENSHOTS):
            return None
        kept[name] = found
        return str(name)

    doc["screenshots"] = [n for n in (keep(s) for s in doc["screenshots"]) if n is not None]
    for issue in doc["issues"]:
        if "screenshotUrl" in issue:
            issue["screenshotUrl"] = keep(issue["screenshotUrl"])
            if issue["screenshotUrl"] is None:
                del issue["screenshotUrl"]
    return AgentResult(output=doc, passed=parsed.result == "PASS", screenshots=kept)
