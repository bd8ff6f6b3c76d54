"""The agent's stdin/stdout contract: the run input and the Tester Army "TestOutput" document.

Both are camelCase JSON. The same contract binds an operator's external agent command
(``RUNPLANE_AGENT_COMMAND``), so the models ignore unknown input fields instead of rejecting
them: a newer worker may send more than this agent understands.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from runplane.domain.network import NetworkPolicy

StepType = Literal["act", "assert", "javascript", "screenshot", "login", "files"]
StepStatus = Literal["passed", "failed"]
Verdict = Literal["PASS", "FAILED"]
ErrorCode = Literal[
    "unsupported_instruction",
    "element_not_found",
    "assertion_failed",
    "timeout",
    "navigation_failed",
    "javascript_error",
    "browser_error",
]

DEFAULT_STEP_TIMEOUT_MS = 10_000
MIN_REDACTED_LENGTH = 3
#: A step timeout beyond this is a typo, not a wish: the worker's own deadline is the real limit.
MAX_STEP_TIMEOUT_MS = 600_000


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


class StepSpec(_Model):
    type: StepType
    title: str = ""
    code: str | None = None


class Credential(_Model):
    username: str
    password: str


class Viewport(_Model):
    width: int = Field(default=1280, ge=100, le=8192)
    height: int = Field(default=800, ge=100, le=8192)


class RunInput(_Model):
    run_id: str
    feature_name: str = "Prompt run"
    prompt: str | None = None
    steps: list[StepSpec] | None = None
    target_url: str | None = None
    credentials: list[Credential] | None = None
    screenshot_dir: str
    step_timeout_ms: int = Field(default=DEFAULT_STEP_TIMEOUT_MS, ge=1, le=MAX_STEP_TIMEOUT_MS)
    viewport: Viewport | None = None
    #: What the browser may load (``runplane.domain.network.NetworkPolicy``).
    network: NetworkPolicy = NetworkPolicy.ANY

    @field_validator("screenshot_dir")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("screenshotDir must be an absolute path")
        return value

    @field_validator("target_url")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return value.strip() or None

    @model_validator(mode="after")
    def _something_to_run(self) -> RunInput:
        if self.prompt is None and self.steps is None:
            raise ValueError("the run input needs a prompt or steps")
        return self

    @property
    def credential(self) -> Credential | None:
        """The credentials that {{username}}/{{password}} and login steps use."""
        return self.credentials[0] if self.credentials else None

    def secrets(self) -> list[str]:
        """Every credential value: none of them may appear in stderr or in the output.

        Values shorter than MIN_REDACTED_LENGTH are left alone: replacing every "x" in the
        output would destroy it while protecting nothing worth the name.
        """
        values = {
            v
            for c in self.credentials or []
            for v in (c.username, c.password)
            if len(v) >= MIN_REDACTED_LENGTH
        }
        # Longest first so that a secret containing another one is redacted whole.
        return sorted(values, key=len, reverse=True)


class StepResult(_Model):
    step_index: int
    title: str
    status: StepStatus
    summary: str
    error: str | None = None
    error_code: ErrorCode | None = None
    started_at_ms: int
    completed_at_ms: int


class Issue(_Model):
    name: str
    description: str
    url: str
    type: Literal["issue"] = "issue"
    severity: int = 3
    reproduction_steps: list[str]
    expected_behavior: str
    actual_behavior: str
    screenshot_url: str | None = None
    t_ms: int


class TestOutput(_Model):
    # pytest would otherwise try to collect this class when a test module imports it.
    __test__ = False

    feature_name: str
    result: Verdict
    description: str
    screenshots: list[str] = Field(default_factory=list)
    issues: list[Issue] = Field(default_factory=list)
    steps: list[StepResult] = Field(default_factory=list)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)


REDACTED = "***"


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def redact_output(output: TestOutput, secrets: list[str]) -> TestOutput:
    """The output with every credential value replaced, wherever a page or error echoed it."""
    if not secrets:
        return output

    def scrub(value: Any) -> Any:
        if isinstance(value, str):
            return redact(value, secrets)
        if isinstance(value, list):
            return [scrub(v) for v in value]
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items()}
        return value

    return TestOutput.model_validate(scrub(output.model_dump()))
