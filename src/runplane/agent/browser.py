"""Runs planned steps in a fresh headless Chromium (the system one) through Playwright."""

from __future__ import annotations

import asyncio
import functools
import json
import math
import os
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from playwright.async_api import BrowserContext, Locator, Page, async_playwright
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from runplane.agent import LAUNCH_ARGS, chromium_executable
from runplane.agent.contract import (
    ErrorCode,
    Issue,
    RunInput,
    StepResult,
    TestOutput,
    Viewport,
    redact,
    redact_output,
)
from runplane.agent.instructions import (
    SUPPORTED_FORMS,
    Action,
    Click,
    ExpectNoText,
    ExpectText,
    ExpectTitle,
    ExpectUrl,
    Fill,
    Login,
    Open,
    PlannedStep,
    Press,
    RunJavaScript,
    Screenshot,
    Select,
    Wait,
    WaitForText,
    needs_initial_open,
    plan_steps,
    resolve_url,
    uses_credentials,
    with_credentials,
)
from runplane.agent.network import NetworkGuard

Log = Callable[[str], None]
_POLL_S = 0.1
_LAUNCH_TIMEOUT_MS = 30_000


#: URL prefixes ``open`` accepts.
OPENABLE_SCHEMES = ("http://", "https://", "about:blank")


class BrowserLaunchError(Exception):
    """Chromium could not be started: the run has no verdict (exit code 1)."""


class Clock:
    """Milliseconds since the agent started; every time in the output is one of these."""

    def __init__(self, start: float | None = None) -> None:
        """``start``: a ``time.monotonic()`` reading, by default now."""
        self._start = time.monotonic() if start is None else start

    def ms(self) -> int:
        return int((time.monotonic() - self._start) * 1000)


@dataclass(slots=True)
class StepFailure(Exception):
    code: ErrorCode
    message: str
    expected: str
    actual: str
    #: Extra help for the step's error field only (the description stays one sentence).
    hint: str | None = None

    @property
    def error(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


def _first_line(exc: BaseException) -> str:
    """Playwright errors carry a call log after the first line; the first line is the news."""
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return re.sub(r"^\w+\.\w+: ", "", line)  # drop the "Locator.click: " API prefix


def js_truthy(value: Any) -> bool:
    """JavaScript's truthiness of an evaluated value (``[]`` and ``{}`` are truthy there)."""
    if value is None or value is False:
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value != 0 and not math.isnan(value)
    if isinstance(value, str):
        return value != ""
    return True


def js_verdict(value: Any) -> tuple[bool, str | None]:
    """Whether a ``javascript`` step's result passes, and the reason it gives for failing.

    Tester Army's rule first: ``{success: true|false, reason?}`` decides, and a script that
    returns nothing (``undefined``; ``null`` looks the same from here) passes because it
    completed without throwing. Any other value passes when it is truthy.
    """
    if isinstance(value, dict) and isinstance(value.get("success"), bool):
        reason = value.get("reason")
        return value["success"], str(reason) if reason else None
    if value is None:
        return True, None
    return js_truthy(value), None


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, default=str, allow_nan=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _one_line(title: str, limit: int = 100) -> str:
    text = " / ".join(line.strip() for line in title.splitlines() if line.strip())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _union(locators: Sequence[Locator]) -> Locator:
    return functools.reduce(lambda a, b: a.or_(b), locators)


_USER_FIELD = re.compile(r"user ?name|user|e-?mail|login|account|benutzer", re.IGNORECASE)
_PASSWORD_FIELD = re.compile(r"password|passwort|kennwort|passphrase", re.IGNORECASE)
_SUBMIT_BUTTON = re.compile(r"log ?in|sign ?in|submit|continue|anmelden|next", re.IGNORECASE)
_TEXT_INPUTS = (
    'input:not([type]), input[type="text"], input[type="email"], input[type="tel"], '
    'input[type="search"]'
)
_USER_ATTRS = ", ".join(
    f'input[{attr}*="{word}" i]' for attr in ("name", "id") for word in ("user", "email", "login")
)
_ClickRole = Literal["button", "link", "menuitem", "tab", "checkbox", "radio", "option"]
_CLICK_ROLES: tuple[_ClickRole, ...] = (
    "button",
    "link",
    "menuitem",
    "tab",
    "checkbox",
    "radio",
    "option",
)


class _Session:
    def __init__(
        self, run: RunInput, context: BrowserContext, page: Page, clock: Clock, log: Log
    ) -> None:
        self.run = run
        self.context = context
        self.page = page
        self.guard: NetworkGuard | None = None
        self.clock = clock
        self.log = log
        self.timeout = run.step_timeout_ms
        self.shot_dir = Path(run.screenshot_dir)
        self.screenshots: list[str] = []
        self._popups: list[Page] = []
        #: What the current step has done so far, for the summary of a step that then fails.
        self._done: list[str] = []
        # A click on a target=_blank link opens a new tab: the user's next step means that tab.
        context.on("page", self._on_page)

    def _on_page(self, page: Page) -> None:
        self._popups.append(page)

    async def execute(self, steps: Sequence[PlannedStep]) -> TestOutput:
        initial_open = needs_initial_open(steps, self.run.target_url)
        results: list[StepResult] = []
        issues: list[Issue] = []
        for index, step in enumerate(steps):
            started = self.clock.ms()
            failure: StepFailure | None = None
            summary = ""
            self._done = []
            try:
                summary = await self._step(index, step, initial_open and index == 0)
            except StepFailure as exc:
                failure = exc
            except PlaywrightError as exc:
                message = _first_line(exc)
                failure = StepFailure("browser_error", message, "the step runs", message)
            except Exception as exc:  # an agent bug must still end in a verdict, not a trace
                message = f"internal agent error: {type(exc).__name__}: {exc}"
                failure = StepFailure("browser_error", message, "the step runs", message)
            completed = self.clock.ms()
            status = "passed" if failure is None else "failed"
            results.append(
                StepResult(
                    step_index=index,
                    title=step.title,
                    status=status,
                    summary=summary if failure is None else self._failed_summary(failure),
                    error=None if failure is None else failure.error,
                    error_code=None if failure is None else failure.code,
                    started_at_ms=started,
                    completed_at_ms=completed,
                )
            )
            outcome = status if failure is None else f"{status} [{failure.code}] {failure.message}"
            self.log(
                f"[agent] step {index + 1}/{len(steps)} {_one_line(step.title)}: {outcome} "
                f"({completed - started} ms)"
            )
            if failure is not None:
                issues.append(await self._issue(index, steps, failure, completed))
                skipped = len(steps) - index - 1
                description = f"Step {index + 1} failed: {failure.message.rstrip('.')}."
                if skipped:
                    description += f" {skipped} remaining step{'s' * (skipped != 1)} not run."
                return self._output("FAILED", description, issues, results)
        return self._output("PASS", f"{len(steps)} of {len(steps)} steps passed.", [], results)

    def _failed_summary(self, failure: StepFailure) -> str:
        if not self._done:
            return f"Failed: {failure.message}"
        return f"{'; '.join(self._done)}; then failed: {failure.message}"

    def _output(
        self, result: str, description: str, issues: list[Issue], steps: list[StepResult]
    ) -> TestOutput:
        return TestOutput.model_validate(
            {
                "featureName": self.run.feature_name,
                "result": result,
                "description": description,
                "screenshots": self.screenshots,
                "issues": issues,
                "steps": steps,
            }
        )

    async def _issue(
        self, index: int, steps: Sequence[PlannedStep], failure: StepFailure, t_ms: int
    ) -> Issue:
        shot = None
        try:
            shot = await self._screenshot(index, "failure")
        except Exception as exc:  # a crashed page has no picture; the issue still counts
            self.log(f"[agent] no failure screenshot: {_first_line(exc)}")
        return Issue(
            name=f"Step {index + 1} failed: {_one_line(steps[index].title)}",
            description=failure.error,
            url=self.page.url,
            reproduction_steps=[s.title for s in steps[: index + 1]],
            expected_behavior=failure.expected,
            actual_behavior=failure.actual,
            screenshot_url=shot,
            t_ms=t_ms,
        )

    # --- steps --------------------------------------------------------------------------

    async def _step(self, index: int, step: PlannedStep, initial_open: bool) -> str:
        if step.error is not None:
            raise StepFailure(
                "unsupported_instruction",
                step.error.message,
                "the step uses the documented instruction language (docs/browser-agent.md)",
                step.error.reason,
                hint=f"supported: {SUPPORTED_FORMS}",
            )
        done = self._done = []
        if initial_open:
            assert self.run.target_url is not None
            done.append(await self._open(Open(self.run.target_url)))
        for action in step.actions:
            done.append(await self._act(index, self._with_credentials(action)))
        return "; ".join(done)

    def _with_credentials(self, action: Action) -> Action:
        if not uses_credentials(action):
            return action
        if self.run.credential is None:
            raise StepFailure(
                "unsupported_instruction",
                "{{username}}/{{password}} need credentials in the run input",
                "the run input has credentials",
                "it has none",
            )
        return with_credentials(action, self.run.credential)

    async def _act(self, index: int, action: Action) -> str:
        if self.page.is_closed():
            # A tab we followed closed itself (an OAuth popup, say): go on in the newest tab.
            open_pages = [p for p in self.context.pages if not p.is_closed()]
            if not open_pages:
                raise StepFailure("browser_error", "every browser tab is closed", "a tab", "none")
            self.page = open_pages[-1]
        match action:
            case Open():
                return await self._open(action)
            case Click():
                return await self._click(action)
            case Fill():
                return await self._fill(action)
            case Press():
                await self.page.keyboard.press(action.key)
                await self._settle()
                return f"Pressed {action.key}"
            case Select():
                return await self._select(action)
            case WaitForText():
                return await self._wait_for_text(action)
            case Wait():
                await asyncio.sleep(action.ms / 1000)
                return f"Waited {action.ms} ms"
            case ExpectText() | ExpectNoText():
                return await self._expect_text(action)
            case ExpectUrl():
                return await self._expect_url(action)
            case ExpectTitle():
                return await self._expect_title(action)
            case Screenshot():
                return f"Saved screenshot {await self._screenshot(index, action.name)}"
            case RunJavaScript():
                return await self._javascript(action)
            case Login():
                return await self._login()
        raise AssertionError(f"unhandled action {action!r}")  # pragma: no cover

    async def _open(self, action: Open) -> str:
        url = resolve_url(action.url, self.run.target_url)
        if url is None:
            raise StepFailure(
                "navigation_failed",
                f"cannot open {action.url!r}: a relative URL needs targetUrl in the run input",
                f"{action.url} opens",
                "there is no targetUrl to resolve it against",
            )
        if not url.lower().startswith(OPENABLE_SCHEMES):
            # file: and the like would read the worker's own disk (its secrets) into a
            # screenshot: a run may only open what any web browser user could.
            raise StepFailure(
                "navigation_failed",
                f"cannot open {url!r}: only http(s) URLs (and about:blank) may be opened",
                f"{action.url} opens",
                "the URL's scheme is not allowed",
            )
        blocked = await self.guard.problem(url) if self.guard else None
        if blocked is not None:
            message = f"cannot open {url}: blocked by the network policy ({blocked})"
            raise StepFailure("navigation_failed", message, f"{action.url} opens", message)
        try:
            response = await self.page.goto(url, wait_until="load", timeout=self.timeout)
        except PlaywrightTimeoutError:
            message = f"opening {url} timed out after {self.timeout} ms"
            raise StepFailure("navigation_failed", message, f"{url} loads", message) from None
        except PlaywrightError as exc:
            message = f"opening {url} failed: {_first_line(exc)}"
            raise StepFailure("navigation_failed", message, f"{url} loads", message) from None
        if response is not None and response.status >= 400:
            message = f"opening {url} returned HTTP {response.status}"
            raise StepFailure("navigation_failed", message, f"{url} loads", message)
        return f"Opened {url}"

    async def _find(self, tiers: Sequence[Locator], what: str, *, wait: bool = True) -> Locator:
        """The first visible match of the best tier that has one, waiting up to the timeout.

        Tiers are tried in order on every poll, so an exact match wins over a looser one even
        when the looser one comes first in the document.
        """
        deadline = time.monotonic() + self.timeout / 1000
        while True:
            for tier in tiers:
                visible = tier.filter(visible=True)
                try:
                    if await visible.count() > 0:
                        return visible.first
                except PlaywrightError:
                    pass  # the page is navigating; look again on the next poll
            if not wait or time.monotonic() >= deadline:
                raise StepFailure(
                    "element_not_found",
                    f"no {what} found" + (f" within {self.timeout} ms" if wait else ""),
                    f"the page shows {what}",
                    f"no visible {what} was found on {self.page.url}",
                )
            await asyncio.sleep(_POLL_S)

    async def _click(self, action: Click) -> str:
        page, text = self.page, action.text
        roles: tuple[_ClickRole, ...] = (action.role,) if action.role else _CLICK_ROLES

        def by_role(exact: bool) -> Locator:
            return _union([page.get_by_role(role, name=text, exact=exact) for role in roles])

        tiers = [by_role(True)]
        if action.role is None:
            tiers.append(page.get_by_text(text, exact=True))
        tiers.append(by_role(False))
        if action.role is None:
            tiers.append(page.get_by_text(text))
        elif action.role == "link":
            tiers.append(page.locator("a", has_text=text))  # an <a> without href has no role
        what = f'{action.role} "{text}"' if action.role else f'"{text}"'
        target = await self._find(tiers, what if action.role else f'button, link or text "{text}"')
        if await self._opens_new_tab(target):
            # The tab's "page" event may arrive after click() returns: wait for it explicitly.
            async with self.context.expect_page(timeout=self.timeout) as new_tab:
                await self._timed(f"clicking {what}", target.click(timeout=self.timeout))
            self._popups = [await new_tab.value]
        else:
            await self._timed(f"clicking {what}", target.click(timeout=self.timeout))
            await asyncio.sleep(0)  # let a window.open() popup's event be dispatched
        await self._settle()
        return f"Clicked {what}"

    @staticmethod
    async def _opens_new_tab(target: Locator) -> bool:
        try:
            return bool(
                await target.evaluate(
                    """el => {
                        const link = el.closest("a[href][target], area[href][target]");
                        return !!link && !["", "_self", "_top", "_parent"].includes(
                            link.target.toLowerCase());
                    }"""
                )
            )
        except PlaywrightError:
            return False

    async def _fill(self, action: Fill) -> str:
        page, field = self.page, action.field
        tiers = [
            page.get_by_label(field, exact=True),
            page.get_by_placeholder(field, exact=True),
            page.get_by_label(field),
            page.get_by_placeholder(field),
            page.get_by_role("textbox", name=field),
        ]
        target = await self._find(tiers, f'field "{field}"')
        await self._timed(f'filling "{field}"', target.fill(action.value, timeout=self.timeout))
        # The summary leaves the value out (it may be a password typed into the prompt);
        # the step's title still holds it, so secrets belong in {{password}}, which is redacted.
        return f'Filled "{field}"'

    async def _select(self, action: Select) -> str:
        page, field = self.page, action.field
        tiers = [
            page.get_by_label(field, exact=True),
            page.get_by_label(field),
            _union(
                [page.get_by_role("combobox", name=field), page.get_by_role("listbox", name=field)]
            ),
        ]
        target = await self._find(tiers, f'select "{field}"')
        try:
            await target.select_option(action.option, timeout=self.timeout)
        except PlaywrightTimeoutError:
            raise StepFailure(
                "element_not_found",
                f'no option "{action.option}" in "{field}" within {self.timeout} ms',
                f'"{field}" has an option "{action.option}"',
                "the option was not found",
            ) from None
        return f'Selected "{action.option}" in "{field}"'

    async def _timed(self, doing: str, operation: Awaitable[Any]) -> None:
        try:
            await operation
        except PlaywrightTimeoutError as exc:
            message = f"{doing} timed out after {self.timeout} ms: {_first_line(exc)}"
            raise StepFailure("timeout", message, f"{doing} succeeds", message) from None

    async def _settle(self) -> None:
        """After an action that may navigate or open a tab: wait for that page to load."""
        if self._popups:
            self.page = self._popups[-1]
            self._popups.clear()
        try:
            await self.page.wait_for_load_state("load", timeout=self.timeout)
        except PlaywrightError:
            pass  # a page that never finishes loading is for the next expectation to judge

    def _text(self, text: str) -> Locator:
        return self.page.get_by_text(text).filter(visible=True).first

    async def _wait_for_text(self, action: WaitForText) -> str:
        try:
            await self._text(action.text).wait_for(state="visible", timeout=self.timeout)
        except PlaywrightTimeoutError:
            raise StepFailure(
                "timeout",
                f'text "{action.text}" did not appear within {self.timeout} ms',
                f'the text "{action.text}" appears',
                f"it was not visible after {self.timeout} ms",
            ) from None
        return f'Text "{action.text}" appeared'

    async def _expect_text(self, action: ExpectText | ExpectNoText) -> str:
        present = isinstance(action, ExpectText)
        try:
            await self._text(action.text).wait_for(
                state="visible" if present else "hidden", timeout=self.timeout
            )
        except PlaywrightTimeoutError:
            raise StepFailure(
                "assertion_failed",
                f'expected text "{action.text}" {"" if present else "not "}to be visible',
                f'the text "{action.text}" is {"" if present else "not "}visible on the page',
                f"it was not visible within {self.timeout} ms"
                if present
                else f"it was still visible after {self.timeout} ms",
            ) from None
        return f'Text "{action.text}" is {"" if present else "not "}visible'

    async def _poll(self, check: Callable[[], Awaitable[bool]]) -> bool:
        deadline = time.monotonic() + self.timeout / 1000
        while True:
            try:
                if await check():
                    return True
            except PlaywrightError:
                pass  # mid-navigation; try again
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_POLL_S)

    async def _expect_url(self, action: ExpectUrl) -> str:
        async def check() -> bool:
            return action.part in self.page.url

        if not await self._poll(check):
            raise StepFailure(
                "assertion_failed",
                f'expected the URL to contain "{action.part}" but it is {self.page.url}',
                f'the URL contains "{action.part}"',
                f"the URL was {self.page.url}",
            )
        return f'URL {self.page.url} contains "{action.part}"'

    async def _expect_title(self, action: ExpectTitle) -> str:
        async def check() -> bool:
            return action.part.lower() in (await self.page.title()).lower()

        if not await self._poll(check):
            title = await self.page.title()
            raise StepFailure(
                "assertion_failed",
                f'expected the title to contain "{action.part}" but it is "{title}"',
                f'the page title contains "{action.part}"',
                f'the title was "{title}"',
            )
        return f'Title contains "{action.part}"'

    async def _screenshot(self, index: int, name: str | None) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", (name or "screenshot").lower()).strip("-")[:40]
        stem = f"step-{index + 1:02d}-{slug or 'screenshot'}"
        file_name, n = f"{stem}.png", 1
        while file_name in self.screenshots:
            n += 1
            file_name = f"{stem}-{n}.png"
        await self.page.screenshot(
            path=self.shot_dir / file_name, full_page=True, timeout=self.timeout
        )
        self.screenshots.append(file_name)
        return file_name

    async def _javascript(self, action: RunJavaScript) -> str:
        try:
            value = await self._evaluate(action.code)
        except PlaywrightError as exc:
            message = f"the JavaScript threw: {_first_line(exc)}"
            raise StepFailure("javascript_error", message, "the script runs", message) from None
        passed, reason = js_verdict(value)
        if not passed:
            message = (
                f"the JavaScript reported failure: {reason}"
                if reason
                else f"the JavaScript returned a falsy value ({_short(value)})"
            )
            raise StepFailure(
                "assertion_failed",
                message,
                "the script passes (a truthy value, {success: true} or nothing)",
                f"it returned {_short(value)}",
            )
        return "JavaScript completed" if value is None else f"JavaScript returned {_short(value)}"

    async def _evaluate(self, code: str) -> Any:
        """Evaluate ``code`` as an expression or, when it has top-level return/await, as the
        body of an async function. The fallback runs only after a syntax error, before any of
        the code ran, so nothing executes twice."""
        try:
            return await self.page.evaluate(code)
        except PlaywrightError as exc:
            message = str(exc)
            if "Illegal return statement" in message:
                return await self.page.evaluate(f"async () => {{\n{code}\n}}")
            if "await is only valid" in message:
                body = code if re.search(r"\breturn\b", code) else f"return (\n{code}\n);"
                return await self.page.evaluate(f"async () => {{\n{body}\n}}")
            raise

    async def _login(self) -> str:
        credential = self.run.credential
        if credential is None:
            raise StepFailure(
                "unsupported_instruction",
                "a login step needs credentials in the run input",
                "the run input has credentials",
                "it has none",
            )
        page = self.page
        password = await self._find(
            [page.locator('input[type="password"]'), page.get_by_label(_PASSWORD_FIELD)],
            "password field",
        )
        form = page.locator("form").filter(has=password)
        text_input = page.locator(_TEXT_INPUTS)
        username = await self._find(
            [
                page.get_by_label(_USER_FIELD).and_(text_input),
                page.get_by_placeholder(_USER_FIELD).and_(text_input),
                page.locator('input[autocomplete="username"], input[type="email"]'),
                form.locator(_TEXT_INPUTS),
                page.locator(_USER_ATTRS),
            ],
            "username or email field",
            wait=False,  # the password field is there, so the form has rendered
        )
        await self._timed("filling the username", username.fill(credential.username))
        await self._timed("filling the password", password.fill(credential.password))
        try:
            submit = await self._find(
                [
                    form.locator('button[type="submit"], input[type="submit"], button:not([type])'),
                    page.get_by_role("button", name=_SUBMIT_BUTTON),
                ],
                "submit button",
                wait=False,
            )
        except StepFailure:
            await self._timed("submitting the login form", password.press("Enter"))
        else:
            await self._timed("submitting the login form", submit.click(timeout=self.timeout))
        await self._settle()
        return "Filled the username and password fields and submitted the login form"


async def run_agent(run: RunInput, *, clock: Clock, log: Log) -> TestOutput:
    """Run the whole input in a fresh browser and return the (redacted) output document.

    Raises BrowserLaunchError when Chromium cannot be started.
    """
    secrets = run.secrets()

    def safe_log(line: str) -> None:
        log(redact(line, secrets))

    steps = plan_steps(run)
    if not steps:
        output = _no_steps(run, clock)
    else:
        Path(run.screenshot_dir).mkdir(parents=True, exist_ok=True)
        output = await _in_browser(run, steps, clock, safe_log)
    return redact_output(output, secrets)


def _no_steps(run: RunInput, clock: Clock) -> TestOutput:
    message = "The run has no instructions to execute."
    issue = Issue(
        name="No instructions",
        description=message,
        url=run.target_url or "about:blank",
        reproduction_steps=[],
        expected_behavior="the prompt or steps contain at least one instruction",
        actual_behavior="they contain none",
        t_ms=clock.ms(),
    )
    return TestOutput(
        feature_name=run.feature_name, result="FAILED", description=message, issues=[issue]
    )


async def _in_browser(
    run: RunInput, steps: Sequence[PlannedStep], clock: Clock, log: Log
) -> TestOutput:
    executable = chromium_executable()
    if "/" in executable and not os.access(executable, os.X_OK):
        raise BrowserLaunchError(f"Chromium is not installed at {executable}")
    viewport = run.viewport or Viewport()
    try:
        manager = await async_playwright().start()
    except Exception as exc:
        raise BrowserLaunchError(f"cannot start Playwright: {exc}") from exc
    try:
        try:
            browser = await manager.chromium.launch(
                executable_path=executable,
                headless=True,
                args=list(LAUNCH_ARGS),
                timeout=_LAUNCH_TIMEOUT_MS,
            )
        except PlaywrightError as exc:
            raise BrowserLaunchError(
                f"cannot launch Chromium ({executable}): {_first_line(exc)}"
            ) from exc
        try:
            log(f"[agent] {browser.browser_type.name} {browser.version} started")
            try:
                context = await browser.new_context(
                    viewport={"width": viewport.width, "height": viewport.height},
                    # Self-hosted staging sites often run on self-signed certificates.
                    ignore_https_errors=True,
                )
                context.set_default_timeout(run.step_timeout_ms)
                guard = NetworkGuard(run.network, log)
                await guard.install(context)
                page = await context.new_page()
            except PlaywrightError as exc:
                raise BrowserLaunchError(f"cannot open a browser page: {_first_line(exc)}") from exc
            session = _Session(run, context, page, clock, log)
            session.guard = guard
            return await session.execute(steps)
        finally:
            try:
                await browser.close()
            except PlaywrightError:
                pass  # already gone (crashed): nothing left to close
    finally:
        await manager.stop()
