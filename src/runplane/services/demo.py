"""The demo: a tiny git repository with a passing and a failing test, its project, an admin."""

from __future__ import annotations

import secrets
import subprocess
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runplane.domain.errors import Conflict
from runplane.domain.permissions import ALL_SCOPES, Role, Scope
from runplane.services import accounts, projects, samples, suite, web_suite
from runplane.services.context import Context
from runplane.store import accounts as account_store
from runplane.store import projects as project_store
from runplane.store.database import unit_of_work

DEMO_REPOSITORY = "demo/calculator"
WEB_PROJECT = "Demo shop"
#: The stored browser test of the demo shop (its steps use the documented language).
WEB_TEST_STEPS: list[dict[str, Any]] = [
    {"type": "act", "title": "open login"},
    {"type": "act", "title": 'fill "Email" with "ada@example.com"'},
    {"type": "act", "title": 'fill "Password" with "secret"\nclick button "Log in"'},
    {"type": "assert", "title": 'expect text "Welcome, ada@example.com"'},
    {"type": "screenshot", "title": "the dashboard"},
]
REGRESSION_REPOSITORY = "demo/shout"
DEMO_ADMIN = "admin@runplane.local"

RUNNER = textwrap.dedent(
    '''\
    """A stdlib-only test runner: runs test_* functions, prints as it goes, writes JUnit XML.

    Arguments, when given, select tests by name (runplane's {failed_tests}).
    """
    import os, sys, time, traceback
    from xml.sax.saxutils import quoteattr

    import tests

    selected = set(sys.argv[1:])
    cases = []
    for name in sorted(n for n in dir(tests) if n.startswith("test_")):
        if selected and name not in selected:
            continue
        start = time.monotonic()
        print(f"running {name} ...", flush=True)
        try:
            getattr(tests, name)()
            outcome, message = "pass", ""
            print(f"  {name}: ok", flush=True)
        except AssertionError as exc:
            outcome, message = "fail", str(exc) or "assertion failed"
            traceback.print_exc(file=sys.stdout)
            print(f"  {name}: FAILED", flush=True)
        cases.append((name, outcome, message, time.monotonic() - start))

    report = os.environ.get("RUNPLANE_JUNIT_PATH", "junit.xml")
    failures = sum(1 for c in cases if c[1] == "fail")
    with open(report, "w") as fh:
        fh.write(f'<testsuite name="demo" tests="{len(cases)}" failures="{failures}">')
        for name, outcome, message, seconds in cases:
            fh.write(f'<testcase classname="tests" name="{name}" time="{seconds:.3f}">')
            if outcome == "fail":
                fh.write(f"<failure message={quoteattr(message)}/>")
            fh.write("</testcase>")
        fh.write("</testsuite>")
    print(f"{len(cases) - failures} passed, {failures} failed", flush=True)
    sys.exit(1 if failures else 0)
    '''
)

TESTS_PASSING = textwrap.dedent(
    """\
    import time

    from calculator import add, subtract


    def test_addition():
        time.sleep(1)
        assert add(2, 3) == 5
    """
)

TESTS_WITH_FAILURE = TESTS_PASSING + textwrap.dedent(
    """\


    def test_subtraction():
        time.sleep(1)
        assert subtract(5, 3) == 2, f"subtract(5, 3) returned {subtract(5, 3)}"
    """
)

CALCULATOR = textwrap.dedent(
    """\
    def add(a, b):
        return a + b


    def subtract(a, b):
        return b - a  # the bug the failing test finds
    """
)


SHOUT = textwrap.dedent(
    """\
    #!/usr/bin/env python3
    \"\"\"Upper-cases a text file: shout.py INPUT OUTPUT_DIR writes OUTPUT_DIR/out.txt.\"\"\"
    import pathlib, sys

    text = pathlib.Path(sys.argv[1]).read_text()
    pathlib.Path(sys.argv[2], "out.txt").write_text(text.upper())
    """
)

#: sample name -> (input, approved baseline); the last baseline is stale on purpose.
REGRESSION_SAMPLES = {
    "greeting.txt": (b"hello, world\n", b"HELLO, WORLD\n"),
    "numbers.txt": (b"1 2 3 go\n", b"1 2 3 GO\n"),
    "quote.txt": (b"stay hungry, stay foolish\n", b"STAY HUNGRY!\n"),
}


@dataclass(frozen=True, slots=True)
class Demo:
    repo_path: Path
    passing_sha: str
    failing_sha: str
    regression_sha: str
    admin_email: str
    admin_password: str | None
    token: str
    #: The browser-testing part (Tester Army dialect).
    ta_key: str = ""
    web_test_id: str = ""


def _git(repo: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(repo), *args],
        check=True,
        capture_output=True,
        text=True,
        env={
            "GIT_AUTHOR_NAME": "runplane demo",
            "GIT_AUTHOR_EMAIL": "demo@runplane.local",
            "GIT_COMMITTER_NAME": "runplane demo",
            "GIT_COMMITTER_EMAIL": "demo@runplane.local",
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(repo),
        },
    )
    return out.stdout.strip()


def make_demo_repository(path: Path) -> tuple[str, str]:
    """Create (or reuse) the demo repo; returns (passing commit, failing commit)."""
    if (path / ".git").exists():
        log = _git(path, "log", "--format=%H", "--reverse").split()
        if len(log) >= 2:
            return log[0], log[1]
    path.mkdir(parents=True, exist_ok=True)
    _git(path, "init", "--quiet", "--initial-branch=master")
    (path / "calculator.py").write_text(CALCULATOR)
    (path / "run_tests.py").write_text(RUNNER)
    (path / "tests.py").write_text(TESTS_PASSING)
    _git(path, "add", ".")
    _git(path, "commit", "--quiet", "-m", "calculator with a passing test")
    passing = _git(path, "rev-parse", "HEAD")
    (path / "tests.py").write_text(TESTS_WITH_FAILURE)
    _git(path, "commit", "--quiet", "-am", "add a test that finds the subtraction bug")
    return passing, _git(path, "rev-parse", "HEAD")


def make_regression_repository(path: Path) -> str:
    """A repository whose 'build' yields the program shout.py; returns its commit."""
    if not (path / ".git").exists():
        path.mkdir(parents=True, exist_ok=True)
        _git(path, "init", "--quiet", "--initial-branch=master")
        (path / "shout.py").write_text(SHOUT)
        _git(path, "add", ".")
        _git(path, "commit", "--quiet", "-m", "shout: upper-case a text file")
    return _git(path, "rev-parse", "HEAD")


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def ensure_regression_demo(ctx: Context) -> str:
    """The demo/shout project with three samples and tests (one baseline is stale)."""
    repo = (ctx.settings.data_dir / "demo-regression-repo").resolve()
    sha = make_regression_repository(repo)
    async with unit_of_work(ctx.reads) as session:
        existing = await project_store.get_by_repository(session, REGRESSION_REPOSITORY)
    if existing is not None:
        return sha
    project = await projects.create(
        ctx,
        None,
        projects.ProjectSpec(
            repository=REGRESSION_REPOSITORY,
            repo_url=str(repo),
            program="shout.py",
            build_command="chmod +x shout.py",
            timeout_seconds=300,
            test_timeout_seconds=30,
        ),
    )
    for name, (data, baseline) in REGRESSION_SAMPLES.items():
        view, _ = await samples.upload(ctx, None, _one_chunk(data), filename=name, tags=["demo"])
        expected = await ctx.blobs.put_stream(_one_chunk(baseline), max_bytes=len(baseline))
        await suite.create_test(
            ctx,
            None,
            suite.TestSpec(
                project_id=project.id,
                sample_id=view.sample.id,
                command="{program} {input} {output_dir}",
                active=True,
                description=f"shout {name}",
                outputs=[suite.OutputSpec("out.txt", expected.sha256)],
            ),
        )
    return sha


async def ensure_web_demo(ctx: Context, site_url: str) -> str:
    """The demo shop's web project with one stored test; returns the test's id."""
    existing = [p for p in await web_suite.list_projects(ctx) if p.name == WEB_PROJECT]
    if existing:
        page = await web_suite.list_tests(ctx, existing[0].id, limit=1)
        if page.tests:
            return page.tests[0].id
        project = existing[0]
    else:
        project = await web_suite.create_project(
            ctx, None, web_suite.ProjectSpec(name=WEB_PROJECT, url=site_url)
        )
    view = await web_suite.create_test(
        ctx,
        None,
        web_suite.TestSpec(project_ref=project.id, title="Sign in", steps=WEB_TEST_STEPS),
    )
    return view.test.id


async def ensure_demo(ctx: Context, site_url: str | None = None) -> Demo:
    repo = (ctx.settings.data_dir / "demo-repo").resolve()
    passing, failing = make_demo_repository(repo)
    regression_sha = await ensure_regression_demo(ctx)
    async with unit_of_work(ctx.sessions) as session:
        has_project = await project_store.get_by_repository(session, DEMO_REPOSITORY)
        has_admin = await account_store.get_user_by_email(session, DEMO_ADMIN)
    if has_project is None:
        await projects.create(
            ctx,
            None,
            projects.ProjectSpec(
                repository=DEMO_REPOSITORY,
                repo_url=str(repo),
                test_command="python3 run_tests.py {failed_tests}",
                timeout_seconds=300,
            ),
        )
    password: str | None = None
    if has_admin is None:
        password = secrets.token_urlsafe(12)
        try:
            await accounts.create_user(ctx, DEMO_ADMIN, password, Role.ADMIN)
        except Conflict:
            password = None
    issued = await accounts.issue_for_email(
        ctx, DEMO_ADMIN, f"demo-{secrets.token_hex(4)}", list(ALL_SCOPES), 30
    )
    test_id = ta_key = ""
    if site_url is not None:
        test_id = await ensure_web_demo(ctx, site_url)
        key = await accounts.issue_for_email(
            ctx,
            DEMO_ADMIN,
            f"demo-ta-{secrets.token_hex(4)}",
            [Scope.RUNS_READ, Scope.RUNS_WRITE],
            30,
            prefix=accounts.TESTER_ARMY_PREFIX,
        )
        ta_key = key.token
    return Demo(
        repo, passing, failing, regression_sha, DEMO_ADMIN, password, issued.token, ta_key, test_id
    )
