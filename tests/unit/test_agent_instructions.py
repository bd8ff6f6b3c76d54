"""The browser agent's instruction language and run planning (pure: no browser)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from runplane.agent import agent_argv
from runplane.agent.browser import js_truthy, js_verdict
from runplane.agent.contract import (
    Credential,
    Issue,
    RunInput,
    StepResult,
    TestOutput,
    redact_output,
)
from runplane.agent.instructions import (
    MAX_WAIT_MS,
    Click,
    ExpectNoText,
    ExpectText,
    ExpectTitle,
    ExpectUrl,
    Fill,
    Instruction,
    Login,
    Open,
    PlannedStep,
    Press,
    RunJavaScript,
    Screenshot,
    Select,
    Unsupported,
    Wait,
    WaitForText,
    instruction_lines,
    needs_initial_open,
    normalize_key,
    parse_line,
    plan_steps,
    resolve_url,
    uses_credentials,
    with_credentials,
)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # navigation
        ("open /login", Open("/login")),
        ("open https://example.com/a?b=1", Open("https://example.com/a?b=1")),
        ('open "/path with spaces"', Open("/path with spaces")),
        ("Go To dashboard", Open("dashboard")),
        ("VISIT http://localhost:8000", Open("http://localhost:8000")),
        ("navigate to /x", Open("/x")),
        # clicks
        ('click "Sign in"', Click("Sign in")),
        ("click 'Sign in'", Click("Sign in")),
        ('CLICK BUTTON "Save"', Click("Save", "button")),
        ('click link "About us"', Click("About us", "link")),
        ('click on "Next"', Click("Next")),
        ('click the "Sign in" button', Click("Sign in", "button")),
        ('click on the link "Docs"', Click("Docs", "link")),
        ('click "Don\'t save"', Click("Don't save")),
        ("click 'Say \"hi\"'", Click('Say "hi"')),
        (r'click "Say \"hi\""', Click('Say "hi"')),
        ("click \u201cSmart quotes\u201d", Click("Smart quotes")),
        # fields
        ('fill "Email" with "a@b.c"', Fill("Email", "a@b.c")),
        ("Fill 'Search' WITH ''", Fill("Search", "")),
        ('fill in "Name" with "Ann"', Fill("Name", "Ann")),
        ('fill "Password" with "{{password}}"', Fill("Password", "{{password}}")),
        ('type "hello world" into "Message"', Fill("Message", "hello world")),
        ('type "x" in "Query"', Fill("Query", "x")),
        ('select "Germany" in "Country"', Select("Germany", "Country")),
        ('select "Pro" from "Plan"', Select("Pro", "Plan")),
        # keys
        ("press Enter", Press("Enter")),
        ("press enter", Press("Enter")),
        ("press TAB", Press("Tab")),
        ("press the Escape key", Press("Escape")),
        ("press esc", Press("Escape")),
        ("press ctrl+a", Press("Control+a")),
        ("press Shift+ArrowDown", Press("Shift+ArrowDown")),
        ('press "a"', Press("a")),
        ("press f5", Press("F5")),
        # waiting
        ('wait for "Loaded"', WaitForText("Loaded")),
        ("wait for text 'Loaded'", WaitForText("Loaded")),
        ("wait 500 ms", Wait(500)),
        ("wait 500ms", Wait(500)),
        ("wait 2 s", Wait(2000)),
        ("wait 1.5 seconds", Wait(1500)),
        ("wait for 3 secs", Wait(3000)),
        ("wait 30 s", Wait(MAX_WAIT_MS)),
        # expectations
        ('expect text "Welcome"', ExpectText("Welcome")),
        ('expect "Welcome"', ExpectText("Welcome")),
        ('expect "text"', ExpectText("text")),
        ('Expect No Text "Error"', ExpectNoText("Error")),
        ("expect not 'Error'", ExpectNoText("Error")),
        ('expect url "/home"', ExpectUrl("/home")),
        ("expect url /home", ExpectUrl("/home")),
        ('expect title "Dashboard"', ExpectTitle("Dashboard")),
        # screenshots
        ("screenshot", Screenshot()),
        ("take a screenshot", Screenshot()),
        ("Take screenshot", Screenshot()),
        ('screenshot "home page"', Screenshot("home page")),
        ('take a screenshot "after login"', Screenshot("after login")),
        # prompt-style decoration: list markers, a trailing period, surrounding space
        ("1. open /login", Open("/login")),
        ("- click 'Go'", Click("Go")),
        ('  expect text "Done".  ', ExpectText("Done")),
        ('expect text "Done."', ExpectText("Done.")),
    ],
)
def test_parse_line(line: str, expected: Instruction) -> None:
    assert parse_line(line) == expected


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("frobnicate the widget", "unknown instruction 'frobnicate'"),
        ('"open" /login', "unknown instruction"),
        ("open", "exactly one URL"),
        ("open /a /b", "exactly one URL"),
        ("go /login", "go to <url>"),
        ("click Sign in", "put the text to click in quotes"),
        ("click", "missing the text to click"),
        ('click ""', "is empty"),
        ('click "Save" "Cancel"', "in quotes"),
        ('click "unterminated', 'missing closing " quote'),
        ('click "a"b', "right after a quoted string"),
        ('fill "Email" "x"', 'fill "<label or placeholder>" with'),
        ('fill "" with "x"', "with"),
        ("fill Email with x", "with"),
        ('type "x" onto "Field"', "into"),
        ('select "x" "Field"', "select"),
        ("press", "one key"),
        ("press Enter Tab", "one key"),
        ("press Foo", "unknown key 'Foo'"),
        ("press ctrl+bogus", "unknown key"),
        ("wait", "wait <N> ms|s"),
        ("wait 5", "wait <N> ms|s"),
        ("wait five seconds", "wait <N> ms|s"),
        ("wait 31 s", "at most 30 s"),
        ("wait 30001 ms", "at most 30 s"),
        ("wait for Loaded", "in quotes"),
        ("expect", "missing the expected text"),
        ("expect Welcome", "in quotes"),
        ("expect url", "expect url"),
        ("expect title Dashboard", "expect title"),
        ('expect no text ""', "is empty"),
        ("screenshot home", "screenshot"),
        ("take a picture", "take a screenshot"),
    ],
)
def test_unsupported_lines(line: str, reason: str) -> None:
    parsed = parse_line(line)
    assert isinstance(parsed, Unsupported)
    assert parsed.line == line
    assert reason in parsed.reason
    assert parsed.message.startswith("unsupported instruction ")


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        ("https://a.test/x", "http://b.test", "https://a.test/x"),
        ("HTTP://a.test", None, "HTTP://a.test"),
        ("about:blank", None, "about:blank"),
        ("/login", "http://h.test:8080", "http://h.test:8080/login"),
        ("login", "http://h.test:8080", "http://h.test:8080/login"),
        # the target URL counts as a directory, whether or not it ends with a slash
        ("login", "http://h.test/app", "http://h.test/app/login"),
        ("login", "http://h.test/app/", "http://h.test/app/login"),
        ("/login", "http://h.test/app", "http://h.test/login"),
        ("../up", "http://h.test/app/sub", "http://h.test/app/up"),
        ("?q=1", "http://h.test/app?old=2#frag", "http://h.test/app/?q=1"),
        ("example.com", "http://h.test", "http://h.test/example.com"),
        # without a target URL, a bare host gets a scheme; anything else cannot be opened
        ("example.com/path", None, "https://example.com/path"),
        ("localhost:3000/x", None, "http://localhost:3000/x"),
        ("127.0.0.1:8000", None, "http://127.0.0.1:8000"),
        ("//cdn.test/a", None, "https://cdn.test/a"),
        ("/login", None, None),
        ("login", None, None),
    ],
)
def test_resolve_url(url: str, base: str | None, expected: str | None) -> None:
    assert resolve_url(url, base) == expected


def test_normalize_key() -> None:
    assert normalize_key("return") == "Enter"
    assert normalize_key("Cmd+Shift+z") == "Meta+Shift+z"
    assert normalize_key("controlormeta+A") == "ControlOrMeta+A"
    assert normalize_key("space") == "Space"
    assert normalize_key("F13") is None


def test_credentials_fill_every_text_argument() -> None:
    credential = Credential(username="ann", password="pw")
    fill = Fill("{{ Username }}", "{{password}}")
    assert uses_credentials(fill) and not uses_credentials(Fill("User", "ann"))
    assert with_credentials(fill, credential) == Fill("ann", "pw")
    assert with_credentials(ExpectText("Hi {{username}}!"), credential) == ExpectText("Hi ann!")
    assert with_credentials(Wait(5), credential) == Wait(5)
    assert with_credentials(Click("{{other}}"), credential) == Click("{{other}}")


def test_instruction_lines_skip_blanks_and_comments() -> None:
    text = "# setup\n\nopen /\n   # indented comment\n  click 'Go'  \n"
    assert instruction_lines(text) == ["open /", "click 'Go'"]


def _run(**fields: Any) -> RunInput:
    return RunInput.model_validate({"runId": "r", "screenshotDir": "/tmp/shots", **fields})


def test_prompt_run_has_one_step_per_line() -> None:
    steps = plan_steps(_run(prompt="# login\nopen /login\n\nnonsense here\nscreenshot"))
    assert [s.title for s in steps] == ["open /login", "nonsense here", "screenshot"]
    assert steps[0] == PlannedStep("open /login", (Open("/login"),))
    assert steps[1].actions == () and steps[1].error is not None
    assert steps[2].actions == (Screenshot(),)


def test_steps_run_plans_each_step_type() -> None:
    steps = plan_steps(
        _run(
            prompt="ignored when steps are given",
            steps=[
                {"type": "act", "title": "open /login\nfill 'User' with 'ann'"},
                {"type": "assert", "title": "expect text 'Hi'\nwait for 'Done'\nexpect url /x"},
                {
                    "type": "javascript",
                    "title": "Has a form",
                    "code": " return !!document.forms[0] ",
                },
                {"type": "screenshot", "title": "Dashboard"},
                {"type": "login", "title": ""},
                {"type": "files", "title": "Upload report.pdf", "extra": "ignored"},
            ],
        )
    )
    assert steps[0].actions == (Open("/login"), Fill("User", "ann"))
    assert steps[1].actions == (ExpectText("Hi"), WaitForText("Done"), ExpectUrl("/x"))
    assert steps[2].actions == (RunJavaScript("return !!document.forms[0]"),)
    assert steps[3].actions == (Screenshot("Dashboard"),)
    assert steps[4] == PlannedStep("login", (Login(),))
    assert steps[5].error is not None and "file steps" in steps[5].error.reason
    assert all(s.error is None for s in steps[:5])


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"type": "assert", "title": "expect text 'Hi'\nclick 'Go'"}, "assert step may only"),
        ({"type": "assert", "title": "wait 2 s"}, "assert step may only"),
        ({"type": "act", "title": "open /\ndo a barrel roll"}, "unknown instruction"),
        ({"type": "act", "title": "  \n# only a comment"}, "no instructions"),
        ({"type": "javascript", "title": "empty", "code": None}, "no code"),
    ],
)
def test_bad_steps_fail_before_running(spec: dict[str, Any], reason: str) -> None:
    [step] = plan_steps(_run(steps=[spec]))
    assert step.actions == ()
    assert step.error is not None and reason in step.error.reason


def test_initial_open_only_when_the_run_does_not_start_with_one() -> None:
    opening = plan_steps(_run(prompt="open /a\nexpect 'x'"))
    clicking = plan_steps(_run(prompt="click 'x'"))
    broken = plan_steps(_run(prompt="bogus"))
    assert not needs_initial_open(opening, "http://h.test")
    assert needs_initial_open(clicking, "http://h.test")
    assert not needs_initial_open(clicking, None)
    assert not needs_initial_open(broken, "http://h.test")
    assert not needs_initial_open([], "http://h.test")


def test_run_input_contract() -> None:
    run = _run(
        prompt="open /",
        targetUrl="  ",
        credentials=[
            {"username": "ann", "password": "hunter2"},
            {"username": "b", "password": "x"},
        ],
        unknownField=1,
    )
    assert run.target_url is None
    assert run.step_timeout_ms == 10_000 and run.viewport is None
    assert run.credential == Credential(username="ann", password="hunter2")
    assert run.secrets() == ["hunter2", "ann"]  # one-letter values are not redacted
    for bad in (
        {},  # neither prompt nor steps
        {"prompt": "open /", "screenshotDir": "relative/dir"},
        {"prompt": "open /", "stepTimeoutMs": 0},
        {"steps": [{"type": "teleport", "title": "x"}]},
    ):
        with pytest.raises(ValidationError):
            _run(**bad)


def test_redact_output_scrubs_every_string() -> None:
    output = TestOutput(
        feature_name="login as ann",
        result="FAILED",
        description="Step 1 failed: hunter2 shown",
        issues=[
            Issue(
                name="x",
                description="d",
                url="http://h/?u=ann&p=hunter2",
                reproduction_steps=["fill 'P' with 'hunter2'"],
                expected_behavior="e",
                actual_behavior="a",
                t_ms=1,
            )
        ],
        steps=[
            StepResult(
                step_index=0,
                title="t",
                status="failed",
                summary="hunter2",
                started_at_ms=0,
                completed_at_ms=1,
            )
        ],
    )
    text = redact_output(output, ["hunter2", "ann"]).to_json()
    assert "hunter2" not in text and "ann" not in text
    assert '"url":"http://h/?u=***&p=***"' in text
    assert "\"reproductionSteps\":[\"fill 'P' with '***'\"]" in text


@pytest.mark.parametrize(
    ("value", "truthy"),
    [
        (None, False),
        (False, False),
        (0, False),
        (0.0, False),
        (math.nan, False),
        ("", False),
        (True, True),
        (1, True),
        ("0", True),
        ([], True),
        ({}, True),
    ],
)
def test_js_truthy(value: Any, truthy: bool) -> None:
    assert js_truthy(value) is truthy


def test_agent_argv() -> None:
    assert agent_argv("/usr/bin/python3") == ["/usr/bin/python3", "-m", "runplane.agent"]


@pytest.mark.parametrize(
    ("value", "verdict"),
    [
        (None, (True, None)),
        ({"success": True}, (True, None)),
        ({"success": False, "reason": "cart is empty"}, (False, "cart is empty")),
        ({"success": False}, (False, None)),
        ({"other": 1}, (True, None)),
        (False, (False, None)),
        (0, (False, None)),
        ("yes", (True, None)),
    ],
)
def test_js_verdict_follows_tester_army_then_truthiness(
    value: Any, verdict: tuple[bool, str | None]
) -> None:
    assert js_verdict(value) == verdict
