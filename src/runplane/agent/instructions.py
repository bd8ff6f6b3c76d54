"""The agent's instruction language: one line, one instruction. Pure: no browser, no I/O.

``parse_line`` turns a line into an ``Instruction`` or an ``Unsupported`` (never raises), and
``plan_steps`` turns a whole run input into the steps the browser executes. The grammar is
documented in docs/browser-agent.md; keep the two in step.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, TypeVar, cast
from urllib.parse import urljoin, urlsplit, urlunsplit

from runplane.agent.contract import Credential, RunInput, StepSpec

MAX_WAIT_MS = 30_000

SUPPORTED_FORMS = (
    'open <url>, click [button|link] "<text>", fill "<field>" with "<value>", '
    'type "<value>" into "<field>", press <Key>, select "<option>" in "<field>", '
    'wait for [text] "<text>", wait <N> ms|s, expect [text] "<text>", expect no text "<text>", '
    'expect url "<part>", expect title "<part>", screenshot ["<name>"]'
)


@dataclass(frozen=True, slots=True)
class Open:
    url: str


@dataclass(frozen=True, slots=True)
class Click:
    text: str
    role: Literal["button", "link"] | None = None


@dataclass(frozen=True, slots=True)
class Fill:
    field: str
    value: str


@dataclass(frozen=True, slots=True)
class Press:
    key: str


@dataclass(frozen=True, slots=True)
class Select:
    option: str
    field: str


@dataclass(frozen=True, slots=True)
class WaitForText:
    text: str


@dataclass(frozen=True, slots=True)
class Wait:
    ms: int


@dataclass(frozen=True, slots=True)
class ExpectText:
    text: str


@dataclass(frozen=True, slots=True)
class ExpectNoText:
    text: str


@dataclass(frozen=True, slots=True)
class ExpectUrl:
    part: str


@dataclass(frozen=True, slots=True)
class ExpectTitle:
    part: str


@dataclass(frozen=True, slots=True)
class Screenshot:
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Unsupported:
    line: str
    reason: str

    @property
    def message(self) -> str:
        return f"unsupported instruction {self.line.strip()!r}: {self.reason}"


Instruction: TypeAlias = (
    Open
    | Click
    | Fill
    | Press
    | Select
    | WaitForText
    | Wait
    | ExpectText
    | ExpectNoText
    | ExpectUrl
    | ExpectTitle
    | Screenshot
)

#: What an ``assert`` step may contain: instructions that look, never ones that act.
EXPECTATIONS = (WaitForText, ExpectText, ExpectNoText, ExpectUrl, ExpectTitle)


# --- step-level actions (not part of the line language) ----------------------------------


@dataclass(frozen=True, slots=True)
class Login:
    """Fill the first credentials into the page's login form and submit it."""


@dataclass(frozen=True, slots=True)
class RunJavaScript:
    code: str


Action: TypeAlias = Instruction | Login | RunJavaScript


@dataclass(frozen=True, slots=True)
class PlannedStep:
    title: str
    actions: tuple[Action, ...]
    #: Set when the step cannot run at all; it then fails without touching the page.
    error: Unsupported | None = None


# --- tokenizer --------------------------------------------------------------------------

_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d"}
_LIST_MARKER = re.compile(r"^(?:[-*\u2022]|\d{1,3}[.)])\s+")


@dataclass(frozen=True, slots=True)
class _Token:
    text: str
    quoted: bool

    def word(self) -> str | None:
        """The keyword this token spells (lower case), or None for a quoted string."""
        return None if self.quoted else self.text.lower()


class _ParseError(Exception):
    pass


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in _QUOTES:
            close = _QUOTES[ch]
            buf: list[str] = []
            i += 1
            while i < n and text[i] != close:
                # A backslash escapes the next character, so quotes can appear inside quotes.
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                buf.append(text[i])
                i += 1
            if i >= n:
                raise _ParseError(f"missing closing {close} quote")
            i += 1
            if i < n and not text[i].isspace():
                raise _ParseError(f"unexpected {text[i:]!r} right after a quoted string")
            tokens.append(_Token("".join(buf), quoted=True))
            continue
        start = i
        while i < n and not text[i].isspace():
            i += 1
        tokens.append(_Token(text[start:i], quoted=False))
    return tokens


def _clean(line: str) -> str:
    text = _LIST_MARKER.sub("", line.strip())
    # Prompts are often written as sentences: one trailing period is punctuation, not content.
    if text.endswith(".") and not text.endswith(".."):
        text = text[:-1].rstrip()
    return text


# --- verbs ------------------------------------------------------------------------------
# Each verb's handler gets the tokens after the verb and returns the instruction, or raises
# _ParseError with the reason the line is not one.


def _skip(args: Sequence[_Token], *words: str) -> Sequence[_Token]:
    """Drop leading optional filler words (in this order, each at most once)."""
    for word in words:
        if args and args[0].word() == word:
            args = args[1:]
    return args


def _quoted(args: Sequence[_Token], what: str, example: str) -> str:
    """The single, non-empty quoted argument."""
    if not args:
        raise _ParseError(f"missing the {what}, e.g. {example}")
    if len(args) != 1 or not args[0].quoted:
        raise _ParseError(f"put the {what} in quotes, e.g. {example}")
    if not args[0].text.strip():
        raise _ParseError(f"the {what} is empty")
    return args[0].text


def _is_form(args: Sequence[_Token], joiners: tuple[str, ...], field: int) -> bool:
    """Whether args are "<a>" <joiner> "<b>" and the field name (args[field]) is not blank.

    The other quoted string is a value and may be empty: fill "Search" with "" clears a field.
    """
    return (
        len(args) == 3
        and args[0].quoted
        and args[1].word() in joiners
        and args[2].quoted
        and bool(args[field].text.strip())
    )


def _open(args: Sequence[_Token]) -> Instruction:
    if len(args) != 1 or not args[0].text.strip():
        raise _ParseError("expected exactly one URL, e.g. open /login or open https://example.com")
    return Open(args[0].text.strip())


def _go(args: Sequence[_Token]) -> Instruction:
    if not args or args[0].word() != "to":
        raise _ParseError('expected "go to <url>"')
    return _open(args[1:])


def _navigate(args: Sequence[_Token]) -> Instruction:
    if not args or args[0].word() != "to":
        raise _ParseError('expected "navigate to <url>"')
    return _open(args[1:])


_ROLES: dict[str, Literal["button", "link"]] = {"button": "button", "link": "link"}


def _click(args: Sequence[_Token]) -> Instruction:
    args = _skip(args, "on", "the")
    role = _ROLES.get(args[0].word() or "") if args else None
    if role is not None:
        args = args[1:]
    # Also accept the role after the text: click the "Sign in" button.
    if role is None and len(args) == 2 and args[0].quoted:
        role = _ROLES.get(args[1].word() or "")
        if role is not None:
            args = args[:1]
    return Click(_quoted(args, "text to click", 'click "Sign in"'), role)


def _fill(args: Sequence[_Token]) -> Instruction:
    args = _skip(args, "in")
    if not _is_form(args, ("with",), field=0):
        raise _ParseError('expected fill "<label or placeholder>" with "<value>"')
    return Fill(field=args[0].text, value=args[2].text)


def _type(args: Sequence[_Token]) -> Instruction:
    if not _is_form(args, ("into", "in"), field=2):
        raise _ParseError('expected type "<value>" into "<label or placeholder>"')
    return Fill(field=args[2].text, value=args[0].text)


def _select(args: Sequence[_Token]) -> Instruction:
    if not _is_form(args, ("in", "from"), field=2):
        raise _ParseError('expected select "<option>" in "<label>"')
    return Select(option=args[0].text, field=args[2].text)


_KEY_NAMES = {
    name.lower(): name
    for name in (
        "Enter Tab Escape Backspace Delete Insert Space Home End PageUp PageDown "
        "ArrowUp ArrowDown ArrowLeft ArrowRight Shift Control Alt Meta ControlOrMeta"
    ).split()
    + [f"F{i}" for i in range(1, 13)]
}
_KEY_ALIASES = {
    "return": "Enter",
    "esc": "Escape",
    "del": "Delete",
    "ctrl": "Control",
    "cmd": "Meta",
    "command": "Meta",
    "option": "Alt",
    "up": "ArrowUp",
    "down": "ArrowDown",
    "left": "ArrowLeft",
    "right": "ArrowRight",
}


def normalize_key(key: str) -> str | None:
    """Playwright's name for a key or chord (``ctrl+a`` → ``Control+a``), None if unknown.

    Playwright key names are case-sensitive; prompts are not, so map every spelling here and
    reject unknown names before the browser does it with a less helpful error.
    """
    out: list[str] = []
    for part in key.split("+"):
        if len(part) == 1:
            out.append(part)  # a character key: "a" and "A" are different keys
            continue
        name = _KEY_NAMES.get(part.lower()) or _KEY_ALIASES.get(part.lower())
        if name is None:
            return None
        out.append(name)
    return "+".join(out)


def _press(args: Sequence[_Token]) -> Instruction:
    args = _skip(args, "the")
    if len(args) == 2 and args[1].word() == "key":
        args = args[:1]
    if len(args) != 1 or not args[0].text:
        raise _ParseError("expected one key, e.g. press Enter")
    key = normalize_key(args[0].text)
    if key is None:
        raise _ParseError(
            f"unknown key {args[0].text!r} (use e.g. Enter, Tab, Escape, ArrowDown, Control+A)"
        )
    return Press(key)


_DURATION = re.compile(
    r"^(\d+(?:\.\d+)?)\s*(ms|msec|millis|milliseconds?|s|secs?|seconds?)$", re.IGNORECASE
)


def _duration(args: Sequence[_Token]) -> Instruction:
    match = _DURATION.match(" ".join(t.text for t in args))
    if match is None or any(t.quoted for t in args):
        raise _ParseError('expected wait for "<text>" or wait <N> ms|s, e.g. wait 500 ms')
    value, unit = float(match[1]), match[2].lower()
    ms = round(value if unit.startswith("m") else value * 1000)
    if ms > MAX_WAIT_MS:
        raise _ParseError(
            f"a fixed wait is at most {MAX_WAIT_MS // 1000} s; wait for a text instead"
        )
    return Wait(ms)


def _wait(args: Sequence[_Token]) -> Instruction:
    if not args or args[0].word() != "for":
        return _duration(args)
    rest = _skip(args[1:], "text")
    if rest and not rest[0].quoted and rest[0].text[:1].isdigit():
        return _duration(rest)  # wait for 2 seconds
    return WaitForText(_quoted(rest, "text to wait for", 'wait for "Welcome"'))


def _expect(args: Sequence[_Token]) -> Instruction:
    head = args[0].word() if args else None
    if head in ("url", "title"):
        rest = args[1:]
        # A URL part is one token and may go unquoted; a title part is text, so quoted.
        if len(rest) != 1 or not rest[0].text or (head == "title" and not rest[0].quoted):
            raise _ParseError(f'expected expect {head} "<part>"')
        return ExpectUrl(rest[0].text) if head == "url" else ExpectTitle(rest[0].text)
    if head in ("no", "not"):
        rest = _skip(args[1:], "text")
        return ExpectNoText(_quoted(rest, "text", 'expect no text "Error"'))
    rest = _skip(args, "text")
    return ExpectText(_quoted(rest, "expected text", 'expect text "Welcome"'))


def _screenshot(args: Sequence[_Token]) -> Instruction:
    if not args:
        return Screenshot()
    if len(args) == 1 and args[0].quoted:
        return Screenshot(args[0].text.strip() or None)
    raise _ParseError('expected screenshot or screenshot "<name>"')


def _take(args: Sequence[_Token]) -> Instruction:
    args = _skip(args, "a")
    if not args or args[0].word() != "screenshot":
        raise _ParseError('expected "take a screenshot"')
    return _screenshot(args[1:])


_VERBS: dict[str, Callable[[Sequence[_Token]], Instruction]] = {
    "open": _open,
    "visit": _open,
    "goto": _open,
    "go": _go,
    "navigate": _navigate,
    "click": _click,
    "fill": _fill,
    "type": _type,
    "press": _press,
    "select": _select,
    "wait": _wait,
    "expect": _expect,
    "screenshot": _screenshot,
    "take": _take,
}


def parse_line(line: str) -> Instruction | Unsupported:
    """Parse one instruction line; never raises."""
    text = _clean(line)
    if not text:
        return Unsupported(line, "the instruction is empty")
    try:
        tokens = _tokenize(text)
        handler = _VERBS.get(tokens[0].word() or "")
        if handler is None:
            raise _ParseError(f"unknown instruction {tokens[0].text!r}")
        return handler(tokens[1:])
    except _ParseError as exc:
        return Unsupported(line, str(exc))


# --- URLs and credentials ---------------------------------------------------------------

_ABSOLUTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|about:|data:)", re.IGNORECASE)
_HOST = re.compile(
    r"^(?P<host>localhost|\d{1,3}(?:\.\d{1,3}){3}|[\w-]+(?:\.[\w-]+)*\.[a-z]{2,})(?::\d+)?"
    r"(?:[/?#].*)?$",
    re.IGNORECASE,
)


def resolve_url(url: str, base: str | None) -> str | None:
    """The absolute URL for ``open <url>``, or None when it cannot be made absolute.

    Relative URLs are resolved against ``base`` taken as a directory, so with a target URL
    of ``http://host/app`` ``open login`` goes to ``http://host/app/login`` while ``open /login``
    goes to ``http://host/login``. Without a base, a bare host name gets a scheme.
    """
    url = url.strip()
    if _ABSOLUTE.match(url):
        return url
    if base:
        parts = urlsplit(base)
        path = parts.path if parts.path.endswith("/") else parts.path + "/"
        return urljoin(urlunsplit((parts.scheme, parts.netloc, path, "", "")), url)
    if url.startswith("//"):
        return "https:" + url
    match = _HOST.match(url)
    if match is None:
        return None
    host = match["host"].lower()
    local = host == "localhost" or host[0].isdigit()
    return ("http://" if local else "https://") + url


_PLACEHOLDER = re.compile(r"\{\{\s*(username|password)\s*\}\}", re.IGNORECASE)

_A = TypeVar("_A", bound=Action)


def uses_credentials(action: Action) -> bool:
    return any(
        isinstance(v, str) and _PLACEHOLDER.search(v)
        for v in (getattr(action, f.name) for f in dataclasses.fields(action))
    )


def with_credentials(action: _A, credential: Credential) -> _A:
    """The action with {{username}}/{{password}} replaced in every text argument."""

    def fill(value: str) -> str:
        return _PLACEHOLDER.sub(
            lambda m: credential.username if m[1].lower() == "username" else credential.password,
            value,
        )

    changes = {
        f.name: fill(v)
        for f in dataclasses.fields(action)
        if isinstance(v := getattr(action, f.name), str)
    }
    # The plugin cannot check **changes against a TypeVar; the field names come from fields().
    return cast(_A, dataclasses.replace(cast(Any, action), **changes))


# --- planning ---------------------------------------------------------------------------


def instruction_lines(text: str) -> list[str]:
    """The instruction lines of a prompt or step title: non-blank, not ``#`` comments."""
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _instructions_step(title: str, *, expectations_only: bool) -> PlannedStep:
    lines = instruction_lines(title)
    if not lines:
        return PlannedStep(title, (), Unsupported(title, "the step has no instructions"))
    actions: list[Action] = []
    for line in lines:
        parsed = parse_line(line)
        if isinstance(parsed, Unsupported):
            return PlannedStep(title, (), parsed)
        if expectations_only and not isinstance(parsed, EXPECTATIONS):
            reason = 'an assert step may only contain expect … and wait for "…" instructions'
            return PlannedStep(title, (), Unsupported(line, reason))
        actions.append(parsed)
    return PlannedStep(title, tuple(actions))


def plan_step(spec: StepSpec) -> PlannedStep:
    title = spec.title.strip() or spec.type
    if spec.type == "act":
        return _instructions_step(title, expectations_only=False)
    if spec.type == "assert":
        return _instructions_step(title, expectations_only=True)
    if spec.type == "javascript":
        code = (spec.code or "").strip()
        if not code:
            return PlannedStep(title, (), Unsupported(title, "the javascript step has no code"))
        return PlannedStep(title, (RunJavaScript(code),))
    if spec.type == "screenshot":
        return PlannedStep(title, (Screenshot(spec.title.strip() or None),))
    if spec.type == "login":
        return PlannedStep(title, (Login(),))
    reason = "file steps are not supported by the built-in browser agent"
    return PlannedStep(title, (), Unsupported(title, reason))


def plan_steps(run: RunInput) -> list[PlannedStep]:
    """The steps of a run: its ``steps`` when given, else one step per prompt line."""
    if run.steps:
        return [plan_step(spec) for spec in run.steps]
    steps: list[PlannedStep] = []
    for line in instruction_lines(run.prompt or ""):
        parsed = parse_line(line)
        if isinstance(parsed, Unsupported):
            steps.append(PlannedStep(line, (), parsed))
        else:
            steps.append(PlannedStep(line, (parsed,)))
    return steps


def needs_initial_open(steps: Sequence[PlannedStep], target_url: str | None) -> bool:
    """Whether the first step must open ``targetUrl`` before its own first action."""
    if not target_url or not steps or steps[0].error is not None:
        return False
    return not isinstance(steps[0].actions[0], Open)
