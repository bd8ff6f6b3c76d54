"""The web dashboard: its rules over plain HTTP, then a real Chromium driving it end to end.

Screenshots of every browser step go to ``test-output/dashboard/<test>/`` (gitignored).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from runplane.config import Settings
from runplane.domain.permissions import Role
from runplane.domain.status import TERMINAL, RunStatus
from runplane.services import accounts, browser_runs, demo, projects, runs
from runplane.services.context import Context
from runplane.store.runs import RunFilter
from tests.conftest import Api, DemoRepo, LiveServer, _api, make_settings

PASSWORD = "password123"
REPO_ROOT = Path(__file__).resolve().parents[2]
SHOTS = REPO_ROOT / "test-output" / "dashboard"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
#: Prints a line every 0.2 s for 12 s: long enough to watch the log grow and cancel.
SLOW_COMMAND = (
    "python3 -c 'import time\nfor i in range(60):\n"
    '    print("line", i, flush=True)\n    time.sleep(0.2)\''
)
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data", log_stream_keepalive_seconds=1.0)


# ---- helpers ---------------------------------------------------------------------------------


async def _user(ctx: Context, role: Role, email: str | None = None) -> str:
    email = email or f"{role.value}-dash@example.com"
    await accounts.create_user(ctx, email, PASSWORD, role)
    return email


def _csrf(html: str) -> str:
    found = CSRF.search(html)
    assert found, html
    return found.group(1)


async def _sign_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    """Sign ``client`` in; returns the session's CSRF token."""
    form = await client.get("/login")
    assert form.status_code == 200
    answer = await client.post(
        "/login", data={"email": email, "password": password, "csrf_token": _csrf(form.text)}
    )
    assert answer.status_code == 303, answer.text
    page = await client.get("/")
    assert page.status_code == 200
    return _csrf(page.text)


async def _project(ctx: Context, repo: DemoRepo, repository: str, command: str) -> None:
    await projects.create(
        ctx,
        None,
        projects.ProjectSpec(repository=repository, repo_url=str(repo.path), test_command=command),
    )


async def _queued_run(ctx: Context, repo: DemoRepo, repository: str = "demo/calculator") -> int:
    await _project(ctx, repo, repository, "python3 run_tests.py")
    run, _ = await runs.submit(
        ctx, None, runs.RunRequest(repository, repo.passing_sha, "linux"), user_id=None
    )
    return run.id


async def _finished(ctx: Context, run_id: int, timeout: float = 60) -> RunStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = RunStatus((await runs.get(ctx, run_id)).status)
        if status in TERMINAL:
            return status
        assert time.monotonic() < deadline, f"run {run_id} still {status}"
        await asyncio.sleep(0.1)


def _sse_events(body: str) -> list[tuple[str | None, str, dict[str, Any]]]:
    """(id, event, data) of each event in a text/event-stream body (comments skipped)."""
    events = []
    for block in body.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":") or ": " not in line:
                continue
            key, _, value = line.partition(": ")
            fields[key] = value
        if "event" in fields:
            events.append((fields.get("id"), fields["event"], json.loads(fields["data"])))
    return events


# ---- plain HTTP: sessions, CSRF, roles, headers ----------------------------------------------


async def test_pages_need_a_session_and_json_clients_still_get_the_index(
    api_no_workers: Api,
) -> None:
    client = api_no_workers.client
    home = await client.get("/")
    assert home.status_code == 303 and home.headers["location"] == "/login"
    deep = await client.get("/runs/7?done=canceled")
    assert deep.status_code == 303
    assert deep.headers["location"] == "/login?next=/runs/7%3Fdone%3Dcanceled"
    for fetched in ("/runs/table", "/runs/1/status", "/runs/1/log/stream", "/queue/table"):
        assert (await client.get(fetched)).status_code == 401, fetched
    assert (await client.get("/runs/1/screenshots/shot-1.png")).status_code == 401
    index = await client.get("/", headers={"Accept": "application/json"})
    assert index.status_code == 200 and index.json()["apis"]["sample_platform_v1"]["base"]
    assert (await client.get("/api")).json() == index.json()


async def test_signing_in_sets_a_signed_httponly_lax_cookie(api_no_workers: Api) -> None:
    ctx, client = api_no_workers.ctx, api_no_workers.client
    email = await _user(ctx, Role.TESTER)
    form = await client.get("/login?next=/queue")
    pre_session = form.headers["set-cookie"].lower()
    assert "httponly" in pre_session and "samesite=lax" in pre_session
    assert "secure" not in pre_session  # plain http
    wrong = await client.post(
        "/login", data={"email": email, "password": "nope-nope", "csrf_token": _csrf(form.text)}
    )
    assert wrong.status_code == 400 and "Email or password is incorrect." in wrong.text
    unknown = await client.post(
        "/login",
        data={"email": "ghost@example.com", "password": PASSWORD, "csrf_token": _csrf(form.text)},
    )
    assert unknown.status_code == 400 and "Email or password is incorrect." in unknown.text
    right = await client.post(
        "/login",
        data={
            "email": email,
            "password": PASSWORD,
            "csrf_token": _csrf(form.text),
            "next": "/queue",
        },
    )
    assert right.status_code == 303 and right.headers["location"] == "/queue"
    assert right.headers["set-cookie"] != form.headers["set-cookie"]
    assert (await client.get("/queue")).status_code == 200
    # Signing out clears the cookie; the pages want a sign-in again.
    out = await client.post("/logout", data={"csrf_token": _csrf((await client.get("/")).text)})
    assert out.status_code == 303 and 'runplane_session=""' in out.headers["set-cookie"]
    assert (await client.get("/")).status_code == 303


async def test_the_cookie_is_secure_over_https(api_no_workers: Api) -> None:
    transport = httpx.ASGITransport(app=api_no_workers.app, client=("127.0.0.1", 50001))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        form = await client.get("/login")
        assert "secure" in form.headers["set-cookie"].lower()


async def test_redirect_after_sign_in_stays_on_this_site(api_no_workers: Api) -> None:
    ctx, client = api_no_workers.ctx, api_no_workers.client
    email = await _user(ctx, Role.USER)
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example", "/login"):
        form = await client.get("/login")
        answer = await client.post(
            "/login",
            data={
                "email": email,
                "password": PASSWORD,
                "csrf_token": _csrf(form.text),
                "next": target,
            },
        )
        assert answer.headers["location"] == "/", target


async def test_the_session_cookie_does_not_authenticate_the_apis(api_no_workers: Api) -> None:
    ctx, client = api_no_workers.ctx, api_no_workers.client
    await _sign_in(client, await _user(ctx, Role.ADMIN))
    assert client.cookies.get("runplane_session")
    for path in ("/api/v1/runs", "/api/v1/auth/me", "/ta/v1/runs", "/ta/api/v1/runs"):
        assert (await client.get(path)).status_code == 401, path
    created = await client.post(
        "/api/v1/runs",
        json={"repository": "demo/calculator", "commit_sha": "a" * 40, "platform": "linux"},
    )
    assert created.status_code == 401


async def test_posts_without_the_csrf_token_are_refused(
    api_no_workers: Api, demo_repo: DemoRepo
) -> None:
    ctx, client = api_no_workers.ctx, api_no_workers.client
    email = await _user(ctx, Role.ADMIN)
    run_id = await _queued_run(ctx, demo_repo)
    # The sign-in form: no cookie at all, then a cookie but no or a wrong token.
    bare = await client.post("/login", data={"email": email, "password": PASSWORD})
    assert bare.status_code == 403 and "Request refused" in bare.text
    await client.get("/login")
    for extra in ({}, {"csrf_token": ""}, {"csrf_token": "x" * 43}):
        answer = await client.post("/login", data={"email": email, "password": PASSWORD, **extra})
        assert answer.status_code == 403, extra
    token = await _sign_in(client, email)
    # Signed in, every form needs the token: a JSON body or a wrong token are refused too.
    wrong = token[:-1] + ("B" if token.endswith("A") else "A")
    refused = [
        await client.post(f"/runs/{run_id}/cancel"),
        await client.post(f"/runs/{run_id}/cancel", data={"csrf_token": wrong}),
        await client.post(f"/runs/{run_id}/cancel", json={"csrf_token": token}),
        await client.post("/runs", data={"repository": "demo/calculator"}),
        await client.post("/tokens", data={"name": "x", "scopes": "runs:read"}),
        await client.post("/logout"),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert refused[0].headers["content-type"].startswith("text/html")
    assert (await runs.get(ctx, run_id)).status == "queued"
    # A token from another session does not fit this one.
    other = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")
    async with other:
        foreign = await _sign_in(other, await _user(ctx, Role.ADMIN, "other@example.com"))
    stolen = await client.post(f"/runs/{run_id}/cancel", data={"csrf_token": foreign})
    assert stolen.status_code == 403
    done = await client.post(f"/runs/{run_id}/cancel", data={"csrf_token": token})
    assert done.status_code == 303 and (await runs.get(ctx, run_id)).status == "canceled"


async def test_a_viewer_sees_no_controls_and_a_forged_post_is_refused(
    api_no_workers: Api, demo_repo: DemoRepo
) -> None:
    ctx, client = api_no_workers.ctx, api_no_workers.client
    run_id = await _queued_run(ctx, demo_repo)
    token = await _sign_in(client, await _user(ctx, Role.USER))
    page = await client.get(f"/runs/{run_id}")
    assert page.status_code == 200
    assert "Cancel run" not in page.text and "/cancel" not in page.text
    assert "can watch runs but not cancel" in page.text
    listing = await client.get("/")
    assert "Queue a run" not in listing.text
    for action in ("cancel", "retry", "restart"):
        forged = await client.post(f"/runs/{run_id}/{action}", data={"csrf_token": token})
        assert forged.status_code == 403, action
        assert "This action requires one of the roles" in forged.text
    submit = await client.post(
        "/runs",
        data={
            "csrf_token": token,
            "repository": "demo/calculator",
            "commit_sha": demo_repo.passing_sha,
            "platform": "linux",
        },
    )
    assert submit.status_code == 403
    assert (await runs.get(ctx, run_id)).status == "queued"
    listed, total = await runs.list_runs(ctx, RunFilter(), sort="-created_at", limit=10, offset=0)
    assert total == 1 and listed[0].id == run_id


async def test_controls_follow_the_role_table(api_no_workers: Api, demo_repo: DemoRepo) -> None:
    ctx, client = api_no_workers.ctx, api_no_workers.client
    run_id = await _queued_run(ctx, demo_repo)
    await _sign_in(client, await _user(ctx, Role.TESTER))
    page = (await client.get(f"/runs/{run_id}")).text
    assert "Cancel run" in page and "Retry as a new run" not in page  # not finished yet
    assert "Queue a run" in (await client.get("/")).text


async def test_a_tampered_or_stale_cookie_is_no_session(api_no_workers: Api) -> None:
    ctx, client = api_no_workers.ctx, api_no_workers.client
    await _sign_in(client, await _user(ctx, Role.ADMIN))
    good = client.cookies["runplane_session"]
    payload, _, rest = good.partition(".")
    client.cookies.set("runplane_session", payload[:-2] + "AA." + rest)
    assert (await client.get("/")).status_code == 303
    # A session whose version no longer matches the user (password or role changed) ends.
    with pytest.raises(accounts.AuthenticationFailed):
        await accounts.session_principal(ctx, 1, "0" * 24)
    grant = await accounts.authenticate_password(ctx, "admin-dash@example.com", PASSWORD)
    assert (await accounts.session_principal(ctx, 1, grant.session_version)).role is Role.ADMIN


async def test_dashboard_pages_carry_strict_security_headers(api_no_workers: Api) -> None:
    ctx, client = api_no_workers.ctx, api_no_workers.client
    await _sign_in(client, await _user(ctx, Role.ADMIN))
    for path in ("/", "/queue", "/tokens", "/login", "/static/dashboard.js", "/runs/999"):
        response = await client.get(path)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp, path
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert "strict-transport-security" in response.headers
        if not path.startswith("/static"):
            assert response.headers["cache-control"] == "no-store", path
            html = response.text
            # No inline code for the CSP to block: scripts come from files, no handlers.
            assert re.findall(r"<script(?![^>]*\bsrc=)", html) == [], path
            assert not re.search(r"\son[a-z]+=", html) and " style=" not in html, path
    assert (await client.get("/runs/999")).status_code == 404
    assert (await client.get("/runs/abc")).status_code == 404


async def test_the_kind_filter_is_applied_by_the_database(
    api_no_workers: Api, demo_repo: DemoRepo
) -> None:
    ctx, client = api_no_workers.ctx, api_no_workers.client
    await _queued_run(ctx, demo_repo, repository="demo/plain")
    spec = projects.ProjectSpec(
        repository="demo/suite", repo_url=str(demo_repo.path), program="prog", test_command=None
    )
    await projects.create(ctx, None, spec)
    await runs.submit(
        ctx, None, runs.RunRequest("demo/suite", demo_repo.passing_sha, "linux"), user_id=None
    )
    await _sign_in(client, await _user(ctx, Role.ADMIN))
    shown = {
        kind: (await client.get(f"/runs/table?kind={kind}")).text
        for kind in ("tests", "regression", "browser")
    }
    assert "demo/plain" in shown["tests"] and "demo/suite" not in shown["tests"]
    assert "demo/suite" in shown["regression"] and "demo/plain" not in shown["regression"]
    assert "demo/" not in shown["browser"]
    assert "1 run" in shown["tests"] and "1 run" in shown["regression"]


async def test_everything_shown_is_escaped(api_no_workers: Api, demo_repo: DemoRepo) -> None:
    ctx, client = api_no_workers.ctx, api_no_workers.client
    evil = "demo/<img src=x onerror=alert(1)>"
    await _queued_run(ctx, demo_repo, repository=evil)
    await _sign_in(client, await _user(ctx, Role.ADMIN))
    for path in ("/", "/runs/1", "/queue"):
        html = (await client.get(path)).text
        assert "<img src=x" not in html, path
        assert "demo/&lt;img src=x onerror=alert(1)&gt;" in html, path


async def test_the_log_stream_resumes_from_last_event_id(api: Api, demo_repo: DemoRepo) -> None:
    ctx, client = api.ctx, api.client
    await _project(ctx, demo_repo, "demo/calculator", "python3 run_tests.py")
    run, _ = await runs.submit(
        ctx, None, runs.RunRequest("demo/calculator", demo_repo.passing_sha, "linux")
    )
    await _finished(ctx, run.id)
    await _sign_in(client, await _user(ctx, Role.USER))
    whole = await client.get(f"/runs/{run.id}/log/stream")
    assert whole.headers["content-type"].startswith("text/event-stream")
    events = _sse_events(whole.text)
    *chunks, (end_id, end, final) = events
    assert end == "end" and final["status"] == "passed" and end_id == str(final["offset"])
    text = "".join(data["text"] for _, _, data in chunks)
    assert "test_addition: ok" in text and len(text.encode()) == final["offset"]
    assert [i for i, _, _ in chunks] == [str(d["next_offset"]) for _, _, d in chunks]
    # A reconnecting EventSource sends the last id it saw: the rest comes, nothing twice.
    middle = len(text.encode()) // 2
    resumed = await client.get(f"/runs/{run.id}/log/stream", headers={"Last-Event-ID": str(middle)})
    rest = _sse_events(resumed.text)
    assert rest[0][2]["offset"] == middle
    assert "".join(d["text"] for _, e, d in rest if e == "log") == text.encode()[middle:].decode()
    plain = await client.get(f"/runs/{run.id}/log.txt")
    assert plain.text == text and plain.headers["content-type"].startswith("text/plain")


async def test_sign_in_attempts_are_rate_limited_per_address(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path / "limited", rate_limit_token_create=2, rate_limit_token_create_window_seconds=60
    )
    async for api in _api(settings, run_workers=False):
        token = _csrf((await api.client.get("/login")).text)
        codes = [
            (
                await api.client.post(
                    "/login",
                    data={"email": "x@example.com", "password": "wrong", "csrf_token": token},
                )
            ).status_code
            for _ in range(3)
        ]
        assert codes == [400, 400, 429]


# ---- a real browser --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=LAUNCH_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


Shot = Callable[[str], None]


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[tuple[Page, Shot]]:
    """A fresh page (own cookies) at 1366x768 and ``shot(name)`` saving a screenshot."""
    folder = SHOTS / request.node.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems: list[str] = []

    def noted(message: ConsoleMessage) -> None:
        # Answers the tests provoke (a 400 for a wrong password, no favicon) are logged as
        # "Failed to load resource"; anything else (a CSP violation, a script error) counts.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(f"{message.text} ({message.location.get('url')})")

    page.on("console", noted)
    count = iter(range(1, 100))

    def shot(name: str) -> None:
        page.screenshot(path=str(folder / f"{next(count):02d}-{name}.png"), full_page=True)

    try:
        yield page, shot
    finally:
        context.close()
    # A CSP violation (inline code) or a script error would show up here.
    assert problems == []


def _browser_sign_in(page: Page, server: LiveServer, email: str) -> None:
    page.goto(server.url + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Runs", exact=True)).to_be_visible()


def test_sign_in_submit_watch_the_log_grow_and_cancel(
    live_server: LiveServer, demo_repo: DemoRepo, page: tuple[Page, Shot]
) -> None:
    tab, shot = page
    server = live_server
    email = server.user(Role.CONTRIBUTOR)
    server.call(_project(server.ctx, demo_repo, "demo/slow", SLOW_COMMAND))

    tab.goto(server.url + "/")
    expect(tab).to_have_url(re.compile(r"/login$"))
    expect(tab.get_by_role("heading", name="Sign in")).to_be_visible()
    shot("sign-in-form")
    # Keyboard only: the email field has focus; Tab to the password, Enter submits.
    expect(tab.get_by_label("Email")).to_be_focused()
    tab.keyboard.type(email)
    tab.keyboard.press("Tab")
    tab.keyboard.type("not-the-password")
    tab.keyboard.press("Enter")
    expect(tab.get_by_role("alert")).to_have_text("Email or password is incorrect.")
    expect(tab.get_by_label("Email")).to_have_value(email)
    shot("wrong-password")
    tab.get_by_label("Password").fill(PASSWORD)
    tab.get_by_label("Password").press("Enter")
    expect(tab.get_by_role("heading", name="Runs", exact=True)).to_be_visible()
    expect(tab.get_by_text(f"{email} (contributor)")).to_be_visible()
    shot("runs-list-empty")

    tab.get_by_label("Repository", exact=True).first.select_option("demo/slow")
    tab.get_by_label("Commit SHA").fill(demo_repo.passing_sha)
    tab.get_by_label("Platform").select_option("linux")
    tab.get_by_role("button", name="Queue run").click()
    expect(tab).to_have_url(re.compile(r"/runs/1\?done=submitted$"))
    expect(tab.get_by_role("status").filter(has_text="Run queued.")).to_be_visible()
    log = tab.locator("#log")
    expect(log).to_contain_text("line 2", timeout=30_000)
    shot("log-started")
    first = log.inner_text()
    expect(log).to_contain_text("line 8")
    assert len(log.inner_text()) > len(first)
    expect(tab.locator("#run-status .status")).to_have_text("Running")
    expect(tab.get_by_text("Following the log live.")).to_be_visible()
    shot("log-grown")

    tab.get_by_role("button", name="Cancel run").click()
    expect(tab).to_have_url(re.compile(r"/runs/1\?done=canceled$"))
    expect(tab.locator("#run-status .status")).to_have_text("Canceled", timeout=20_000)
    expect(tab.get_by_text("The run is over (canceled)")).to_be_visible()
    expect(tab.get_by_role("button", name="Cancel run")).to_have_count(0)
    expect(tab.get_by_role("button", name="Retry as a new run")).to_be_visible()
    final_log = log.inner_text()
    assert "line 59" not in final_log
    shot("canceled")

    tab.get_by_role("link", name="All runs").click()
    row = tab.locator("#runs-table tbody tr").first
    expect(row).to_contain_text("#1")
    expect(row).to_contain_text("Canceled")
    expect(row).to_contain_text("demo/slow")
    tab.get_by_label("Status").select_option("passed")
    tab.get_by_role("button", name="Apply filters").click()
    expect(tab.locator("#runs-table")).to_contain_text("No runs match these filters.")
    shot("runs-list-filtered")
    tab.get_by_label("Status").select_option("canceled")
    tab.get_by_label("Kind").select_option("tests")
    tab.get_by_role("button", name="Apply filters").click()
    expect(tab.locator("#runs-table tbody tr")).to_have_count(1)
    shot("runs-list-canceled")


def test_a_viewer_sees_no_cancel_button_and_forged_posts_are_refused(
    live_server: LiveServer, demo_repo: DemoRepo, page: tuple[Page, Shot]
) -> None:
    tab, shot = page
    server = live_server
    server.call(_project(server.ctx, demo_repo, "demo/slow", SLOW_COMMAND))
    run, _ = server.call(
        runs.submit(server.ctx, None, runs.RunRequest("demo/slow", demo_repo.passing_sha, "linux"))
    )
    try:
        _browser_sign_in(tab, server, server.user(Role.USER))
        expect(tab.get_by_role("heading", name="Queue a run")).to_have_count(0)
        tab.get_by_role("link", name=f"#{run.id}", exact=True).click()
        expect(tab.get_by_role("heading", name=f"Run #{run.id}")).to_be_visible()
        expect(tab.locator("#log")).to_contain_text("line 1", timeout=30_000)
        expect(tab.get_by_text("can watch runs but not cancel")).to_be_visible()
        expect(tab.get_by_role("button", name="Cancel run")).to_have_count(0)
        shot("viewer-run-page")
        token = tab.locator("input[name=csrf_token]").first.input_value()
        forged = tab.request.post(
            f"{server.url}/runs/{run.id}/cancel", form={"csrf_token": token}, max_redirects=0
        )
        assert forged.status == 403 and "requires one of the roles" in forged.text()
        no_token = tab.request.post(f"{server.url}/runs/{run.id}/cancel", max_redirects=0)
        assert no_token.status == 403 and "Request refused" in no_token.text()
        assert server.call(runs.get(server.ctx, run.id)).status == "running"
        tab.set_content(no_token.text())
        shot("csrf-refused-page")
        tab.goto(server.url + "/queue")
        running = tab.get_by_role("region", name=re.compile("Running"))
        expect(running.get_by_role("row").filter(has_text=f"#{run.id}")).to_contain_text(
            "demo/slow"
        )
        expect(tab.get_by_role("region", name="Queued (0)")).to_contain_text("Nothing is waiting")
        shot("queue")
    finally:
        server.call(runs.cancel(server.ctx, None, run.id))


def test_the_tokens_page_creates_shows_once_and_revokes(
    live_server: LiveServer, page: tuple[Page, Shot]
) -> None:
    tab, shot = page
    server = live_server
    _browser_sign_in(tab, server, server.user(Role.TESTER))
    tab.get_by_role("link", name="API tokens").click()
    expect(tab.get_by_role("heading", name="API tokens")).to_be_visible()
    expect(tab.get_by_text("You have no tokens yet.")).to_be_visible()
    # A tester may not hold admin scopes: they are not offered.
    expect(tab.get_by_label("system:write")).to_have_count(0)
    shot("tokens-empty")
    tab.get_by_label("Name").fill("ci-bot")
    tab.get_by_label("runs:write").check()
    tab.get_by_label("Expires in (days)").fill("7")
    tab.get_by_role("button", name="Create token").click()
    raw = tab.get_by_label("Your new token").input_value()
    assert raw.startswith("spci_")
    expect(tab.get_by_text("it is shown only once")).to_be_visible()
    shot("token-created")
    me = httpx.get(f"{server.url}/api/v1/auth/me", headers={"Authorization": f"Bearer {raw}"})
    assert me.status_code == 200 and me.json()["token_scopes"] == [
        "results:read",
        "runs:read",
        "runs:write",
    ]
    tab.goto(server.url + "/tokens")
    assert raw not in tab.content()
    row = tab.get_by_role("row").filter(has_text="ci-bot")
    expect(row).to_contain_text("active")
    tab.get_by_role("button", name="Revoke token ci-bot").click()
    expect(tab.get_by_role("status")).to_contain_text("The token was revoked")
    expect(tab.get_by_role("row").filter(has_text="ci-bot")).to_contain_text("revoked")
    expect(tab.get_by_role("button", name="Revoke token ci-bot")).to_have_count(0)
    shot("token-revoked")
    again = httpx.get(f"{server.url}/api/v1/auth/me", headers={"Authorization": f"Bearer {raw}"})
    assert again.status_code == 401


def test_run_pages_show_a_regression_diff_and_a_browser_screenshot(
    live_server: LiveServer, site: str, page: tuple[Page, Shot]
) -> None:
    tab, shot = page
    server = live_server
    ctx = server.ctx
    sha = server.call(demo.ensure_regression_demo(ctx))
    regression, _ = server.call(
        runs.submit(ctx, None, runs.RunRequest(demo.REGRESSION_REPOSITORY, sha, "linux"))
    )
    shop = server.call(
        browser_runs.submit_prompt(
            ctx, None, f'open {site}/login\nexpect text "Log in"\nscreenshot'
        )
    )
    assert server.call(_finished(ctx, regression.id), timeout=90) is RunStatus.FAILED
    assert server.call(_finished(ctx, shop.id), timeout=90) is RunStatus.PASSED

    _browser_sign_in(tab, server, server.user(Role.ADMIN))
    tab.goto(f"{server.url}/runs/{regression.id}")
    results = tab.locator("#run-results")
    expect(results.get_by_role("row").filter(has_text="quote.txt")).to_contain_text("Fail")
    expect(results.get_by_role("row").filter(has_text="greeting.txt")).to_contain_text("Pass")
    diff = tab.get_by_label("Diff of out.txt")
    expect(diff).to_contain_text("-STAY HUNGRY!")
    expect(diff).to_contain_text("+STAY HUNGRY, STAY FOOLISH")
    expect(tab.locator("#run-progress")).to_have_attribute("value", "3")
    expect(tab.get_by_text("3 of 3 tests done")).to_be_visible()
    expect(tab.get_by_text("The run is over (failed)")).to_be_visible()
    shot("regression-diff")
    actual = tab.get_by_role("row").filter(has_text="quote.txt").get_by_role("link", name="actual")
    download = tab.request.get(server.url + str(actual.get_attribute("href")))
    assert download.status == 200 and download.body() == b"STAY HUNGRY, STAY FOOLISH\n"
    assert download.headers["content-disposition"].startswith("attachment")

    tab.goto(f"{server.url}/runs/{shop.id}")
    expect(tab.get_by_role("heading", name="Browser test")).to_be_visible()
    expect(tab.locator("#run-results")).to_contain_text("Pass")
    image = tab.get_by_role("img", name=re.compile(f"Screenshot 1 of run {shop.id}"))
    expect(image).to_be_visible()
    image.scroll_into_view_if_needed()
    tab.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    shot("browser-screenshot")
    # The image route is the session's: without the cookie it is a 401.
    source = str(image.get_attribute("src"))
    assert httpx.get(server.url + source).status_code == 401
