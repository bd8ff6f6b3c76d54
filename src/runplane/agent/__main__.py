"""``python -m runplane.agent``: run input JSON on stdin → TestOutput JSON on stdout."""

from __future__ import annotations

import asyncio
import os
import sys
import time

from pydantic import ValidationError

from runplane.agent import EXIT_BROWSER_FAILED, EXIT_INVALID_INPUT, EXIT_OK
from runplane.agent.contract import RunInput


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _describe(error: ValidationError) -> str:
    # include_input=False: the offending value may be a password.
    problems = error.errors(include_input=False, include_url=False)
    return "; ".join(
        f"{'.'.join(str(p) for p in problem['loc']) or 'document'}: {problem['msg']}"
        for problem in problems
    )


def parse_input(raw: bytes) -> RunInput:
    """The run input document; raises pydantic.ValidationError for anything invalid."""
    return RunInput.model_validate_json(raw)


def main() -> int:
    started = time.monotonic()
    try:
        run = parse_input(sys.stdin.buffer.read())
    except ValidationError as exc:
        _log(f"[agent] invalid run input: {_describe(exc)}")
        return EXIT_INVALID_INPUT
    # Imported only now so that a bad input document is reported without loading Playwright.
    from runplane.agent.browser import BrowserLaunchError, Clock, run_agent

    clock = Clock(started)
    # Stdout carries exactly one JSON document: point fd 1 at stderr while the browser runs
    # so nothing else (a library print, a child process) can write into it.
    out_fd = os.dup(1)
    sys.stdout.flush()
    os.dup2(2, 1)
    try:
        output = asyncio.run(run_agent(run, clock=clock, log=_log))
    except BrowserLaunchError as exc:
        _log(f"[agent] {exc}")
        os.close(out_fd)
        return EXIT_BROWSER_FAILED
    _log(f"[agent] {output.result}: {output.description}")
    with os.fdopen(out_fd, "w", encoding="utf-8") as out:
        out.write(output.to_json() + "\n")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
