"""The built-in browser agent for real: a subprocess, a headless system Chromium, a local site."""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from runplane.agent import agent_argv, chromium_executable
from runplane.agent.contract import TestOutput

PASSWORD = "s3cret-Pa55"
IN_CI = os.environ.get("CI", "").lower() == "true"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

LOGIN_PAGE = """<!doctype html><html><head><title>Sign in - Demo</title></head><body>
<h1>Sign in</h1>
<form method="post" action="/session">
  <label for="user">Username</label> <input id="user" name="user">
  <input type="password" name="password" placeholder="Password">
  <label for="plan">Plan</label>
  <select id="plan" name="plan"><option value="free">Free</option><option>Pro</option></select>
  <button type="submit">Sign in</button>
</form>
<p><a href="/links">More links</a></p>
</body></html>"""

LINKS_PAGE = """<!doctype html><html><head><title>Links</title></head><body>
<p>Useful links:</p><a href="/about" target="_blank">About us</a>
</body></html>"""

ABOUT_PAGE = """<!doctype html><html><head><title>About - Demo</title></head><body>
<h1>About</h1><p>We test things.</p>
</body></html>"""


class _Site(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output clean

    def _send(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/login":
            self._send(200, LOGIN_PAGE)
        elif url.path == "/links":
            self._send(200, LINKS_PAGE)
        elif url.path == "/about":
            self._send(200, ABOUT_PAGE)
        elif url.path == "/home":
            query = parse_qs(url.query)
            user = html.escape(query.get("user", ["?"])[0])
            plan = html.escape(query.get("plan", ["?"])[0])
            self._send(
                200,
                f"<!doctype html><title>Home - Demo</title><p>Welcome, {user}</p>"
                f"<p>Plan: {plan}</p>",
            )
        else:
            self._send(404, "<!doctype html><title>Not found</title><p>Not found</p>")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = parse_qs(self.rfile.read(length).decode())
        user = form.get("user", [""])[0]
        if urlsplit(self.path).path == "/session" and form.get("password") == [PASSWORD]:
            plan = form.get("plan", [""])[0]
            self._send(303, "", {"Location": f"/home?user={user}&plan={plan}"})
        else:
            self._send(200, "<!doctype html><title>Sign in - Demo</title><p>Wrong password</p>")


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def chromium() -> str:
    executable = chromium_executable()
    if os.access(executable, os.X_OK):
        return executable
    reason = f"Chromium is not installed at {executable!r} (apt-get install chromium)"
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass
class AgentRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> TestOutput:
        assert self.returncode == 0, self.stderr
        return TestOutput.model_validate_json(self.stdout)

    @property
    def document(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.stdout)
        return value


def _run(stdin: bytes, env: dict[str, str] | None = None) -> AgentRun:
    proc = subprocess.run(
        agent_argv(sys.executable),
        input=stdin,
        capture_output=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )
    return AgentRun(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def _agent(tmp_path: Path, **fields: Any) -> AgentRun:
    document = {
        "runId": str(uuid.uuid4()),
        "featureName": "Demo feature",
        "screenshotDir": str(tmp_path / "shots"),
        "stepTimeoutMs": 3000,
        **fields,
    }
    return _run(json.dumps(document).encode())


def _steps(*steps: tuple[str, str] | tuple[str, str, str]) -> list[dict[str, Any]]:
    return [{"type": s[0], "title": s[1], "code": s[2] if len(s) == 3 else None} for s in steps]


def test_passing_flow_with_screenshot_and_javascript(
    tmp_path: Path, site: str, chromium: str
) -> None:
    run = _agent(
        tmp_path,
        targetUrl=site,
        credentials=[{"username": "admin", "password": PASSWORD}],
        viewport={"width": 1024, "height": 700},
        steps=_steps(
            ("act", "open /login"),
            (
                "act",
                'fill "Username" with "bob"\nfill "Password" with "{{password}}"\n'
                'select "Pro" in "Plan"',
            ),
            ("act", 'click "Sign in"'),
            (
                "assert",
                'expect text "Welcome, bob"\nexpect url "/home"\nexpect text "Plan: Pro"\n'
                'expect no text "Wrong password"',
            ),
            ("screenshot", "After login"),
            ("javascript", "Title check", 'return document.title.startsWith("Home")'),
            ("javascript", "Two paragraphs", 'document.querySelectorAll("p").length === 2'),
            ("act", 'open /links\nclick link "About us"\nexpect title "about"'),
        ),
    )
    output = run.output
    assert output.result == "PASS", output
    assert output.description == "8 of 8 steps passed."
    assert [s.status for s in output.steps] == ["passed"] * 8
    assert [s.step_index for s in output.steps] == list(range(8))
    assert output.issues == []
    assert output.screenshots == ["step-05-after-login.png"]
    png = (tmp_path / "shots" / output.screenshots[0]).read_bytes()
    assert png.startswith(PNG_SIGNATURE)
    times = [(s.started_at_ms, s.completed_at_ms) for s in output.steps]
    assert all(a <= b for a, b in times) and times == sorted(times)
    # camelCase on the wire, and the password never leaves the agent.
    assert set(run.document) == {
        "featureName", "result", "description", "screenshots", "issues", "steps"
    }  # fmt: skip
    assert "stepIndex" in run.document["steps"][0]
    assert PASSWORD not in run.stdout and PASSWORD not in run.stderr
    assert run.stderr.count("[agent] step ") == 8
    assert '[agent] step 3/8 click "Sign in": passed' in run.stderr


def test_failing_assertion_screenshots_and_reports_an_issue(
    tmp_path: Path, site: str, chromium: str
) -> None:
    run = _agent(
        tmp_path,
        targetUrl=site,
        stepTimeoutMs=1500,
        steps=_steps(
            ("act", "open /login"),
            ("assert", 'expect text "Welcome back"'),
            ("act", 'click "Sign in"'),
        ),
    )
    output = run.output
    assert output.result == "FAILED"
    assert len(output.steps) == 2  # the step after the failure is not run, so not listed
    failed = output.steps[1]
    assert (failed.status, failed.error_code) == ("failed", "assertion_failed")
    assert failed.error == 'expected text "Welcome back" to be visible'
    assert output.description == (
        'Step 2 failed: expected text "Welcome back" to be visible. 1 remaining step not run.'
    )
    [issue] = output.issues
    assert issue.url == f"{site}/login"
    assert issue.reproduction_steps == ["open /login", 'expect text "Welcome back"']
    assert issue.screenshot_url is not None and issue.screenshot_url in output.screenshots
    assert (tmp_path / "shots" / issue.screenshot_url).read_bytes().startswith(PNG_SIGNATURE)
    assert issue.t_ms >= failed.completed_at_ms - 1
    assert run.document["issues"][0]["type"] == "issue"
    assert run.document["issues"][0]["severity"] == 3


def test_prompt_run_opens_the_target_url_first(tmp_path: Path, site: str, chromium: str) -> None:
    prompt = (
        "# the prompt's comments and blank lines are not steps\n\n"
        "click link 'About us'\n"
        'Expect title "About"\n'
        "wait 50 ms\n"
        "take a screenshot\n"
    )
    output = _agent(tmp_path, targetUrl=f"{site}/links", prompt=prompt).output
    assert output.result == "PASS", output
    assert [s.title for s in output.steps] == [
        "click link 'About us'",
        'Expect title "About"',
        "wait 50 ms",
        "take a screenshot",
    ]
    assert output.steps[0].summary.startswith(f"Opened {site}/links; Clicked link")
    assert output.screenshots == ["step-04-screenshot.png"]


def test_unsupported_instruction_fails_its_step(tmp_path: Path, site: str, chromium: str) -> None:
    output = _agent(
        tmp_path, targetUrl=site, prompt="open /login\nfrobnicate the widget\nexpect text 'x'"
    ).output
    assert output.result == "FAILED"
    assert [s.status for s in output.steps] == ["passed", "failed"]
    step = output.steps[1]
    assert step.error_code == "unsupported_instruction"
    assert step.error is not None
    assert "'frobnicate the widget'" in step.error and "supported: open <url>" in step.error
    assert output.issues[0].url == f"{site}/login"


@pytest.mark.parametrize(
    ("code", "error_code", "error"),
    [
        ("document.title === 'nope'", "assertion_failed", "returned a falsy value (false)"),
        ('throw new Error("boom")', "javascript_error", "the JavaScript threw: Error: boom"),
    ],
)
def test_javascript_step_failures(
    tmp_path: Path, site: str, chromium: str, code: str, error_code: str, error: str
) -> None:
    output = _agent(
        tmp_path, targetUrl=f"{site}/login", steps=_steps(("javascript", "check", code))
    ).output
    assert output.result == "FAILED"
    [step] = output.steps
    assert step.error_code == error_code
    assert step.error is not None and error in step.error


def test_login_step_uses_the_credentials(tmp_path: Path, site: str, chromium: str) -> None:
    run = _agent(
        tmp_path,
        targetUrl=f"{site}/login",
        credentials=[
            {"username": "alice", "password": PASSWORD},
            {"username": "mallory", "password": "other-secret"},
        ],
        steps=_steps(
            ("login", "Sign in"),
            ("assert", 'expect text "Welcome, {{username}}"\nexpect url "/home"'),
        ),
    )
    output = run.output
    assert output.result == "PASS", output
    for secret in ("alice", PASSWORD):
        assert secret not in run.stdout and secret not in run.stderr
    assert 'Text "Welcome, ***" is visible' in output.steps[1].summary


@pytest.mark.parametrize(
    "stdin",
    [
        b"",
        b"{not json",
        b'{"runId": "r", "screenshotDir": "/tmp/x"}',  # neither prompt nor steps
        b'{"runId": "r", "screenshotDir": "relative", "prompt": "open /"}',
        b'{"runId": "r", "screenshotDir": "/tmp/x", "prompt": "open /",'
        b' "credentials": [{"username": "u", "password": ["hunter2"]}]}',
    ],
)
def test_invalid_input_exits_2(stdin: bytes) -> None:
    run = _run(stdin)
    assert run.returncode == 2
    assert run.stdout == ""
    assert "invalid run input" in run.stderr
    assert "hunter2" not in run.stderr


def test_missing_browser_exits_1(tmp_path: Path) -> None:
    document = {"runId": "r", "screenshotDir": str(tmp_path), "prompt": "open https://x.test"}
    run = _run(json.dumps(document).encode(), {"RUNPLANE_CHROMIUM_PATH": "/nonexistent/chromium"})
    assert run.returncode == 1
    assert run.stdout == ""
    assert "/nonexistent/chromium" in run.stderr
