"""What a browser run hands its agent and how the agent's answer is read.

The agent is a command (the built-in ``python -m runplane.agent`` or the operator's
``RUNPLANE_AGENT_COMMAND``) that reads the run input JSON on stdin and writes the
output JSON on stdout; it runs in its own session like any test command, so cancel
and time limits kill the browser with it. See ``docs/browser-agent.md``.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runplane.store.models import BrowserRun, Run

#: Screenshots kept per run at most, and the largest one kept.
MAX_SCREENSHOTS = 50
MAX_SCREENSHOT_BYTES = 20 * 1024 * 1024
#: The largest output document read from the agent.
MAX_OUTPUT_BYTES = 5 * 1024 * 1024


class AgentOutputInvalid(Exception):
    """The agent wrote no output, or not a TestOutput document."""


def agent_command(configured: str) -> str:
    return configured or f"{shlex.quote(sys.executable)} -m runplane.agent"


def agent_input(
    run: Run,
    browser: BrowserRun,
    *,
    credentials: list[dict[str, str]] | None,
    screenshot_dir: Path,
    step_timeout_ms: int,
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
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        return None
    path = (directory / name).resolve()
    if not path.is_relative_to(directory.resolve()) or not path.is_file():
        return None
    if path.stat().st_size > MAX_SCREENSHOT_BYTES:
        return None
    return path


def read_agent_output(path: Path, screenshot_dir: Path) -> AgentResult:
    try:
        if path.stat().st_size > MAX_OUTPUT_BYTES:
            raise AgentOutputInvalid("the output document is too large")
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise AgentOutputInvalid(f"no readable JSON output ({exc})") from None
    if not isinstance(doc, dict) or doc.get("result") not in ("PASS", "FAILED"):
        raise AgentOutputInvalid('the output has no "result" of PASS or FAILED')
    kept: dict[str, Path] = {}

    def keep(name: Any) -> str | None:
        found = _screenshot(screenshot_dir, name)
        if found is None or (name not in kept and len(kept) >= MAX_SCREENSHOTS):
            return None
        kept[name] = found
        return str(name)

    shots = doc.get("screenshots")
    doc["screenshots"] = (
        [n for n in (keep(s) for s in shots or []) if n is not None]
        if isinstance(shots, list)
        else []
    )
    issues = doc.get("issues")
    if isinstance(issues, list):
        for issue in issues:
            if isinstance(issue, dict) and "screenshotUrl" in issue:
                issue["screenshotUrl"] = keep(issue["screenshotUrl"])
    else:
        doc["issues"] = []
    doc.setdefault("featureName", "")
    doc.setdefault("description", "")
    return AgentResult(output=doc, passed=doc["result"] == "PASS", screenshots=kept)
