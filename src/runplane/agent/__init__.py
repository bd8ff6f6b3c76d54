"""The built-in deterministic browser agent: ``python -m runplane.agent``.

It reads a run input JSON document on stdin, drives a headless system Chromium and writes a
Tester Army "TestOutput" document on stdout (contract: docs/browser-agent.md). This module
stays import-light (no Playwright) so that the worker can build the command line cheaply.
"""

from __future__ import annotations

import os
import shutil
import sys

#: Chromium flags for an unattended, network-quiet, container-friendly headless browser.
LAUNCH_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)

#: Exit codes: 0 = an output document was written (whatever the verdict).
EXIT_OK = 0
EXIT_BROWSER_FAILED = 1
EXIT_INVALID_INPUT = 2


def agent_argv(python: str | None = None) -> list[str]:
    """The command that runs the built-in agent (stdin: run input, stdout: output)."""
    return [python or sys.executable, "-m", "runplane.agent"]


def chromium_executable() -> str:
    """The Chromium the agent drives: $RUNPLANE_CHROMIUM_PATH, else chromium on PATH.

    Never a Playwright-downloaded build: the system package is the one that gets updates.
    """
    configured = os.environ.get("RUNPLANE_CHROMIUM_PATH", "").strip()
    if configured:
        return configured
    return shutil.which("chromium") or shutil.which("chromium-browser") or "chromium-browser"


__all__ = [
    "EXIT_BROWSER_FAILED",
    "EXIT_INVALID_INPUT",
    "EXIT_OK",
    "LAUNCH_ARGS",
    "agent_argv",
    "chromium_executable",
]
