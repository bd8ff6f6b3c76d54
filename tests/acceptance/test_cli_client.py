"""The client commands (``runplane login``, ``runs …``, ``samples …``) as a user runs them:
subprocesses talking HTTP to a live server, plus the log stream's parser and resume logic
against a scripted SSE server that drops connections."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from runplane.cli.client import Client
from runplane.cli.client_config import (
    DEFAULT_SERVER,
    Target,
    config_path,
    resolve_target,
    write_config,
)
from runplane.cli.client_errors import ClientError
from runplane.cli.sse import LogChunk, LogEnd, ServerSentEvent, SseDecoder
from runplane.domain.permissions import Role, Scope
from runplane.services import projects
from tests.conftest import DemoRepo, LiveServer, make_settings, serve_live

RUNPLANE = [sys.executable, "-m", "runplane.cli.main"]
PASSWORD = "password123"


def _env(tmp_path: Path, token: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPLANE_")}
    # Never the developer's own ~/.config/runplane; wide enough for tables not to wrap.
    env.update(RUNPLANE_CONFIG=str(tmp_path / "cli-config.json"), COLUMNS="200")
    if token is not None:
        env["RUNPLANE_TOKEN"] = token
    env.update(extra)
    return env


def _cli(
    env: dict[str, str], *args: str, stdin: str = "", timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RUNPLANE, *args], capture_output=True, text=True, env=env, input=stdin, timeout=timeout
    )


def _popen(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*RUNPLANE, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _project(server: LiveServer, repo: Path, repository: str, test_command: str) -> int:
    spec = projects.ProjectSpec(
        repository=repository, repo_url=str(repo), test_command=test_command
    )
    return server.call(projects.create(server.ctx, None, spec)).id


def _api(server: LiveServer, token: str, method: str, path: str, **kwargs: Any) -> Any:
    response = httpx.request(
        method,
        f"{server.url}/api/v1{path}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        **kwargs,
    )
    assert response.is_success, response.text
    return response.json()


def _submit(server: LiveServer, token: str, sha: str, repository: str = "demo/calculator") -> int:
    body = {"repository": repository, "commit_sha": sha, "platform": "linux"}
    return int(_api(server, token, "POST", "/runs", json=body)["run_id"])


def _wait_status(
    server: LiveServer, token: str, run_id: int, statuses: set[str], timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = _api(server, token, "GET", f"/runs/{run_id}")
        if run["internal_status"] in statuses:
            return run
        assert time.monotonic() < deadline, f"run {run_id} is still {run['internal_status']}"
        time.sleep(0.1)


def _cli_all(*calls: tuple[dict[str, str], list[str]]) -> list[subprocess.CompletedProcess[str]]:
    """Independent commands at once: each CLI process spends most of its time starting up."""
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: _cli(call[0], *call[1]), calls))


def _error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a failing command printed on stderr."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture
def demo_server(live_server: LiveServer, demo_repo: DemoRepo) -> LiveServer:
    _project(live_server, demo_repo.path, "demo/calculator", "python3 run_tests.py {failed_tests}")
    return live_server


# ---- against a live server -----------------------------------------------------------------


def test_login_saves_a_0600_config_that_later_commands_use(
    demo_server: LiveServer, tmp_path: Path
) -> None:
    email = demo_server.user(Role.CONTRIBUTOR)
    env = _env(tmp_path)
    config = Path(env["RUNPLANE_CONFIG"])
    login = ["login", "--email", email, "--password-stdin"]

    wrong = _cli(env, *login, "--server", demo_server.url, stdin="not-the-password\n")
    assert "sign-in failed: Email or password is incorrect" in _error_line(wrong)
    assert not config.exists()

    done = _cli(env, *login, "--server", demo_server.url + "/", stdin=f"{PASSWORD}\n")
    assert done.returncode == 0, done.stderr
    saved = json.loads(config.read_text())
    assert saved["server"] == demo_server.url
    assert saved["token"].startswith("spci_")
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert str(config) in done.stdout and email in done.stdout
    assert saved["token"] not in done.stdout + done.stderr
    me = httpx.get(
        f"{demo_server.url}/api/v1/auth/me",
        headers={"Authorization": f"Bearer {saved['token']}"},
    ).json()
    assert me["email"] == email
    assert set(me["token_scopes"]) == {"runs:read", "runs:write", "results:read", "system:read"}

    # No --server and no RUNPLANE_TOKEN: both come from the config file.
    listed = _cli(env, "runs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["data"] == []
    again = _cli(env, *login, "--json", stdin=PASSWORD)
    assert again.returncode == 0, again.stderr
    shown = json.loads(again.stdout)
    assert shown["server"] == demo_server.url and "token" not in shown
    assert json.loads(config.read_text())["token"] != saved["token"]


def test_submit_watch_list_show_and_logs(
    demo_server: LiveServer, demo_repo: DemoRepo, tmp_path: Path
) -> None:
    env = _env(tmp_path, demo_server.token(Role.ADMIN), RUNPLANE_SERVER=demo_server.url)
    submit = ["runs", "submit", "--repository", "demo/calculator", "--interval", "0.2"]

    passing = _popen(env, *submit, "--commit", demo_repo.passing_sha, "--watch")
    try:
        # Queue without watching, then watch with --json: the failing commit's verdict is 1.
        queued = _cli(env, *submit, "--commit", demo_repo.failing_sha, "--json", "--branch", "dev")
        assert queued.returncode == 0, queued.stderr
        failed = json.loads(queued.stdout)
        assert failed["branch"] == "dev" and failed["status"] == "queued"
        failed_id = failed["run_id"]
        watched = _cli(env, "runs", "watch", str(failed_id), "--interval", "0.2", "--json")
        out, err = passing.communicate(timeout=60)
    finally:
        passing.kill()
        passing.wait()
    assert watched.returncode == 1, watched.stdout + watched.stderr
    verdict = json.loads(watched.stdout)
    assert verdict["exit_code"] == 1 and verdict["run"]["internal_status"] == "failed"
    assert verdict["summary"]["fail_count"] == 1
    assert passing.returncode == 0, out + err
    passed_id = 3 - failed_id
    assert f"queued run {passed_id} (demo/calculator {demo_repo.passing_sha[:7]}" in out
    assert f"run {passed_id} passed in " in out and "tests: 1 total, 1 pass, 0 fail" in out

    table, narrow, only_failed, shown, as_json, log, lines, followed = _cli_all(
        (env, ["runs", "list"]),
        ({**env, "COLUMNS": "80"}, ["runs", "list"]),
        (env, ["runs", "list", "--status", "fail", "--json"]),
        (env, ["runs", "show", str(failed_id)]),
        (env, ["runs", "show", str(failed_id), "--json"]),
        (env, ["runs", "logs", str(failed_id)]),
        (env, ["runs", "logs", str(failed_id), "--json"]),
        (env, ["runs", "logs", str(failed_id), "-f"]),
    )
    assert table.returncode == 0, table.stderr
    rows = [line.split()[:5] for line in table.stdout.splitlines()]
    assert [str(failed_id), "fail", "demo/calculator", "dev", demo_repo.failing_sha[:7]] in rows
    assert [str(passed_id), "pass", "demo/calculator", "master"] in [r[:4] for r in rows]
    assert "2 of 2 run(s)" in table.stdout
    # 80 columns: the repository and commit give way; the id and status are never cut.
    assert narrow.returncode == 0, narrow.stderr
    narrow_rows = [line.split()[:2] for line in narrow.stdout.splitlines()]
    assert ["ID", "STATUS"] in narrow_rows, narrow.stdout
    assert [str(failed_id), "fail"] in narrow_rows and [str(passed_id), "pass"] in narrow_rows
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 80
    assert [r["run_id"] for r in json.loads(only_failed.stdout)["data"]] == [failed_id]

    assert shown.returncode == 0, shown.stderr
    for expected in (demo_repo.failing_sha, "2 total, 1 pass, 1 fail", "test_subtraction"):
        assert expected in shown.stdout
    assert "progress" in shown.stdout and "completed" in shown.stdout
    detail = json.loads(as_json.stdout)
    assert set(detail) == {"run", "summary", "tests", "progress"}
    assert {t["sample_name"]: t["status"] for t in detail["tests"]} == {
        "test_addition": "pass",
        "test_subtraction": "fail",
    }

    assert log.returncode == 0, log.stderr
    assert "test_subtraction: FAILED" in log.stdout and "1 passed, 1 failed" in log.stdout
    messages = [line["message"] for line in json.loads(lines.stdout)["lines"]]
    assert "1 passed, 1 failed" in messages
    # -f on a finished run prints the whole log once and exits with its verdict.
    assert followed.returncode == 1, followed.stderr
    assert followed.stdout == log.stdout


def test_logs_follow_a_running_run_until_its_end_event(
    demo_server: LiveServer, demo_repo: DemoRepo, tmp_path: Path
) -> None:
    token = demo_server.token(Role.ADMIN)
    env = _env(tmp_path, token, RUNPLANE_SERVER=demo_server.url)
    run_id = _submit(demo_server, token, demo_repo.failing_sha)
    text, as_json = _cli_all(
        (env, ["runs", "logs", str(run_id), "--follow"]),
        (env, ["runs", "logs", str(run_id), "-f", "--json"]),
    )
    assert text.returncode == 1, text.stdout + text.stderr
    assert "running test_addition" in text.stdout and "1 passed, 1 failed" in text.stdout
    # No gap, no duplicate: the same bytes as the finished log.
    assert text.stdout == _cli(env, "runs", "logs", str(run_id)).stdout

    assert as_json.returncode == 1, as_json.stdout + as_json.stderr
    events = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert events[-1] == {"event": "end", "status": "failed", "offset": events[-1]["offset"]}
    position = 0
    for event in events[:-1]:
        assert event["event"] == "log" and event["offset"] == position
        position = event["next_offset"]
    assert position == events[-1]["offset"] == len(text.stdout.encode())
    assert "".join(e["text"] for e in events[:-1]) == text.stdout


def test_cancel_retry_restart_and_watch_of_a_canceled_run(
    demo_server: LiveServer, demo_repo: DemoRepo, tmp_path: Path
) -> None:
    _project(demo_server, demo_repo.path, "demo/slow", "echo started; sleep 60")
    token = demo_server.token(Role.ADMIN)
    env = _env(tmp_path, token, RUNPLANE_SERVER=demo_server.url)
    slow = _submit(demo_server, token, demo_repo.passing_sha, "demo/slow")
    watcher = _popen(env, "runs", "watch", str(slow), "--interval", "0.2")
    try:
        passing = _submit(demo_server, token, demo_repo.passing_sha)
        _wait_status(demo_server, token, slow, {"running"})
        conflict = _cli(env, "runs", "restart", str(slow), "--yes")
        assert "conflict: Run" in _error_line(conflict) and "cancel it before" in conflict.stderr
        canceled = _cli(env, "runs", "cancel", str(slow), "--reason", "not needed today")
        assert canceled.returncode == 0, canceled.stderr
        assert canceled.stdout.startswith(f"run {slow}: Run ") and "cancel" in canceled.stdout
        out, err = watcher.communicate(timeout=60)
    finally:
        watcher.kill()
        watcher.wait()
    assert watcher.returncode == 2, out + err
    assert f"run {slow} was canceled" in out

    _wait_status(demo_server, token, passing, {"passed"})
    again, retried, declined, restarted = _cli_all(
        (env, ["runs", "cancel", str(slow), "--json"]),
        (env, ["runs", "retry", str(passing), "--watch", "--interval", "0.2"]),
        (env, ["runs", "restart", str(passing)]),
        (env, ["runs", "restart", str(passing), "-y", "--watch", "--json", "--interval", "0.2"]),
    )
    assert json.loads(again.stdout)["status"] == "no_op"
    assert retried.returncode == 0, retried.stdout + retried.stderr
    new_id = int(retried.stdout.split()[2])
    assert f"queued run {new_id} as a retry of run {passing}" in retried.stdout
    assert f"run {new_id} passed" in retried.stdout
    assert _api(demo_server, token, "GET", f"/runs/{new_id}")["retry_of"] == passing
    # No answer to the question (stdin is empty): nothing is restarted.
    assert "not restarted (pass --yes to skip this question)" in _error_line(declined)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert json.loads(restarted.stdout)["run"]["run_id"] == passing

    result = json.loads(_cli(env, "runs", "retry", str(slow), "--json").stdout)
    assert result["action"] == "retry" and result["new_run_id"] > new_id
    _api(demo_server, token, "POST", f"/runs/{result['new_run_id']}/cancel")


def test_errors_are_one_line_with_the_apis_message(
    demo_server: LiveServer, demo_repo: DemoRepo, tmp_path: Path
) -> None:
    url = demo_server.url
    nobody = _env(tmp_path, "spci_not-a-real-token")
    reader = _env(tmp_path, demo_server.token(Role.USER, (Scope.RUNS_READ,)), RUNPLANE_SERVER=url)
    admin = _env(tmp_path, demo_server.token(Role.ADMIN), RUNPLANE_SERVER=url)
    submit = ["runs", "submit", "--repository", "demo/calculator", "--commit"]
    unauthorized, denied, missing, invalid, unknown, no_sample, usage = _cli_all(
        (nobody, ["runs", "list", "--server", url]),
        (reader, [*submit, demo_repo.passing_sha]),
        (admin, ["runs", "show", "424242"]),
        (admin, [*submit, "abc"]),
        (admin, ["runs", "submit", "--repository", "nobody/none", "--commit", "a" * 40]),
        (admin, ["samples", "show", "999"]),
        (admin, ["runs", "list", "--status", "passed"]),
    )
    assert _error_line(unauthorized) == (
        "error: not signed in or token invalid: run `runplane login` or set RUNPLANE_TOKEN"
    )
    assert _error_line(denied) == (
        "error: forbidden: This token lacks the required scope: runs:write "
        "(token scopes: runs:read)"
    )
    assert _error_line(missing) == "error: not found: Run 424242 not found"
    assert _error_line(invalid).startswith(
        "error: rejected: Request failed schema validation (commit_sha: "
    )
    assert _error_line(unknown).startswith("error: ")
    assert _error_line(no_sample) == "error: not found: Sample 999 not found"
    assert usage.returncode == 2 and "Invalid value" in usage.stderr


def test_samples_upload_list_show(demo_server: LiveServer, tmp_path: Path) -> None:
    env = _env(tmp_path, demo_server.token(Role.ADMIN), RUNPLANE_SERVER=demo_server.url)
    sample = tmp_path / "clip.txt"
    sample.write_bytes(b"hello sample\n" * 1000)
    sample_sha = hashlib.sha256(sample.read_bytes()).hexdigest()
    uploaded = _cli(env, "samples", "upload", str(sample), "--tag", "demo", "--tag", "text")
    assert uploaded.returncode == 0, uploaded.stderr
    assert uploaded.stdout == f"clip.txt: uploaded as sample 1 (sha256 {sample_sha})\n"

    twice, listed, page, shown, as_json = _cli_all(
        (env, ["samples", "upload", str(sample), "--name", "other.txt", "--json"]),
        (env, ["samples", "list"]),
        (env, ["samples", "list", "--tag", "demo", "--json"]),
        (env, ["samples", "show", "1"]),
        (env, ["samples", "show", "1", "--json"]),
    )
    assert json.loads(twice.stdout)["sample_id"] == 1
    assert listed.returncode == 0, listed.stderr
    rows = [line.split()[:5] for line in listed.stdout.splitlines()]
    assert ["1", "clip.txt", "12.7", "KiB", sample_sha[:12]] in rows
    assert [s["name"] for s in json.loads(page.stdout)["data"]] == ["clip.txt"]
    assert "demo, text" in shown.stdout and "13000 bytes" in shown.stdout
    assert json.loads(as_json.stdout)["size_bytes"] == 13000


def test_rate_limited_commands_say_when_and_wait_when_asked(
    tmp_path: Path, demo_repo: DemoRepo
) -> None:
    settings = make_settings(tmp_path / "data", rate_limit_reads=2, rate_limit_window_seconds=3)
    with contextmanager(serve_live)(settings, run_workers=False) as server:
        _project(server, demo_repo.path, "demo/calculator", "python3 run_tests.py")
        run_id = _submit(server, server.token(), demo_repo.passing_sha)
        # `runs show` sends four reads; with two allowed per window the third gets a 429.
        # Each command has a token of its own, so a budget of its own.
        show = ["runs", "show", str(run_id)]
        eager, patient = _cli_all(
            (_env(tmp_path, server.token(), RUNPLANE_SERVER=server.url), show),
            (
                _env(tmp_path, server.token(), RUNPLANE_SERVER=server.url),
                [*show, "--wait", "--json"],
            ),
        )
        line = _error_line(eager)
        assert line.startswith("error: rate limited: retry in ")
        assert line.endswith(" s (or pass --wait to wait and retry)")
        # The same four reads succeed with --wait: it slept through the 429.
        assert patient.returncode == 0, patient.stderr
        assert json.loads(patient.stdout)["run"]["run_id"] == run_id


def test_unreachable_server(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    line = _error_line(_cli(_env(tmp_path, "spci_x"), "runs", "watch", "1", "--server", url))
    assert line == (
        f"error: cannot connect to {url} (connection refused); is the server running? "
        "Use --server or RUNPLANE_SERVER"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- the event-stream parser and resume logic ----------------------------------------------


def test_sse_decoder_follows_the_event_stream_format() -> None:
    stream = (
        b"\xef\xbb\xbf: a comment\r\n"
        b"retry: 250\r\n"
        b"id: 7\r\nevent: log\r\ndata: first\r\ndata:second\r\ndata\r\n\r\n"
        b"data: no id field keeps the last id\n\n"
        # Only CR and LF end lines: not U+2028, NEL or form feed (JSON may hold them raw).
        b"data: a\xe2\x80\xa8b\xc2\x85c\x0cd\n\n"
        b"id: bad\x00id\nevent: end\ndata: {}\r\r"
        b"id: 9\n\n"  # no data: nothing dispatched, but the id is committed
        b"event: log\ndata: cut off by a dropped connection"
    )
    for size in (1, 2, 3, 7, len(stream)):
        decoder = SseDecoder()
        events: list[ServerSentEvent] = []
        for start in range(0, len(stream), size):
            events += decoder.feed(stream[start : start + size])
        assert events == [
            ServerSentEvent("log", "first\nsecond\n", "7"),
            ServerSentEvent("message", "no id field keeps the last id", "7"),
            ServerSentEvent("message", "a\u2028b\x85c\x0cd", "7"),
            ServerSentEvent("end", "{}", "7"),
        ], size
        assert decoder.last_event_id == "9" and decoder.retry_ms == 250


def _log_event(offset: int, text: str) -> bytes:
    data = {"offset": offset, "next_offset": offset + len(text.encode()), "text": text}
    return f"id: {data['next_offset']}\nevent: log\ndata: {json.dumps(data)}\n\n".encode()


@dataclass
class ScriptedStream:
    """An SSE server whose n-th connection gets the n-th script entry."""

    #: (bytes to send, then: "drop" mid-body, or "close" cleanly without an end event)
    script: list[tuple[bytes, str]]
    seen: list[tuple[str, str | None]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def scripted() -> Iterator[ScriptedStream]:
    state = ScriptedStream(
        script=[
            # Two events, a keep-alive, then the connection dies inside the third event.
            (
                _log_event(0, "hello ") + b": keep-alive\n\n" + _log_event(6, "wörld\n")[:30],
                "drop",
            ),
            # Resumed after "hello "; closes cleanly (the server's maximum duration).
            (_log_event(6, "wörld\n") + b": keep-alive\n\n", "close"),
            # A server that resends bytes the client has: they are skipped, the rest kept.
            (
                b"retry: 10\n\n"
                + _log_event(6, "wörld\n")
                + _log_event(10, "ld\nbye\n")
                + b'id: 17\nevent: end\ndata: {"status": "failed", "offset": 17}\n\n',
                "close",
            ),
        ]
    )

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            state.seen.append((self.path, self.headers.get("Last-Event-ID")))
            body, then = state.script[min(len(state.seen), len(state.script)) - 1]
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            if then == "drop":
                self.send_header("Content-Length", str(len(body) + 100))
            else:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_follow_log_resumes_with_last_event_id_without_gap_or_duplicate(
    scripted: ScriptedStream,
) -> None:
    slept: list[float] = []
    with Client(scripted.url, "spci_x", sleep=slept.append) as client:
        items = list(client.follow_log(3, offset=0))
    assert scripted.seen == [
        ("/api/v1/runs/3/logs/stream", None),
        ("/api/v1/runs/3/logs/stream", "6"),
        ("/api/v1/runs/3/logs/stream", "13"),
    ]
    chunks = [i for i in items if isinstance(i, LogChunk)]
    assert "".join(c.text for c in chunks) == "hello wörld\nbye\n"
    assert [(c.offset, c.next_offset) for c in chunks] == [(0, 6), (6, 13), (13, 17)]
    assert items[-1] == LogEnd("failed", 17)
    assert len(slept) == 2


def test_logs_follow_cli_resumes_and_exits_with_the_verdict(
    scripted: ScriptedStream, tmp_path: Path
) -> None:
    followed = _cli(_env(tmp_path, "spci_x"), "runs", "logs", "3", "-f", "--server", scripted.url)
    assert followed.returncode == 1, followed.stderr
    assert followed.stdout == "hello wörld\nbye\n"
    assert [last_id for _, last_id in scripted.seen] == [None, "6", "13"]


def test_follow_log_backs_off_then_gives_up_on_a_dead_server() -> None:
    slept: list[float] = []
    url = f"http://127.0.0.1:{_free_port()}"
    with Client(url, sleep=slept.append) as client:
        with pytest.raises(ClientError, match="cannot connect"):
            list(client.follow_log(1, max_failures=3))
    assert slept == [0.5, 1.0, 2.0]


def test_where_to_connect_and_with_which_token(tmp_path: Path) -> None:
    config = tmp_path / "nested" / "config.json"
    write_config(config, {"server": "http://a.example:8000", "token": "spci_saved"})
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    env = {"RUNPLANE_CONFIG": str(config)}
    assert resolve_target(None, env) == Target("http://a.example:8000", "spci_saved")
    assert resolve_target("a.example:8000/api/v1/", env).token == "spci_saved"
    # The saved token goes only to the server it came from.
    other = resolve_target("http://b.example", env)
    assert other.token is None and other.note == "the saved token is for http://a.example:8000"
    chosen = {**env, "RUNPLANE_SERVER": "http://b.example/", "RUNPLANE_TOKEN": "spci_env"}
    assert resolve_target(None, chosen) == Target("http://b.example", "spci_env")
    assert resolve_target(None, {"RUNPLANE_CONFIG": str(tmp_path / "none")}) == Target(
        DEFAULT_SERVER, None
    )
    assert config_path({"XDG_CONFIG_HOME": "/x"}) == Path("/x/runplane/config.json")
    assert config_path({}) == Path.home() / ".config" / "runplane" / "config.json"
