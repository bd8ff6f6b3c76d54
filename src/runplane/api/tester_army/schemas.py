"""Request and response bodies of the dialect's run endpoints (camelCase, as on the wire)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

TaStatus = Literal["queued", "running", "completed", "failed", "cancelled"]


class CredentialLogin(BaseModel):
    """``{email, password}`` (one doc snapshot) ..."""

    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=1, max_length=500)
    password: str = Field(min_length=1, max_length=500)


class CredentialItem(BaseModel):
    """... or a list of ``{username, password}`` (another); both are accepted."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=500)
    password: str = Field(min_length=1, max_length=500)


class CreateRunBody(BaseModel):
    # Unknown fields are ignored, not rejected: clients of other doc snapshots send more.
    model_config = ConfigDict(extra="ignore")
    prompt: str = Field(min_length=1, max_length=20_000, description="Includes the target URL.")
    webhookUrl: str | None = Field(default=None, max_length=2000)
    credentials: CredentialLogin | Annotated[list[CredentialItem], Field(max_length=10)] | None = (
        None
    )


class CreateRunAccepted(BaseModel):
    id: str
    status: Literal["queued"]
    createdAt: str


class RunError(BaseModel):
    code: str
    message: str


class RunResponse(BaseModel):
    id: str
    type: Literal["chat", "ci", "test"]
    status: TaStatus
    input: dict[str, Any]
    output: dict[str, Any] | None = None
    error: RunError | None = None
    durationMs: int | None = None
    webhookUrl: str | None = None
    webhookStatus: Literal["pending", "delivered", "failed"] | None = None
    platform: Literal["web", "ios", "android"] | None = None
    source: str | None = None
    projectId: str | None = None
    testId: str | None = None
    batchId: str | None = None
    stepResults: list[dict[str, Any]] | None = None
    userName: str | None = None
    executionMode: Literal["fast", "deep"] | None = None
    autoRetryCount: int | None = None
    createdAt: str
    startedAt: str | None = None
    completedAt: str | None = None


class RunListResponse(BaseModel):
    runs: list[RunResponse]
    nextCursor: str | None


class CancelledRun(BaseModel):
    id: str
    status: Literal["cancelled"]


class StoredTestRunBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    mode: Literal["fast", "deep"] | None = None
    platform: Literal["web", "ios", "android"] | None = None
    deviceModel: Literal["iphone", "ipad"] | None = None
    appId: str | None = None
    projectEnvironmentId: str | None = None
    #: runplane extensions: where to point the browser, and a webhook for this run.
    targetUrl: str | None = Field(default=None, max_length=2000)
    webhookUrl: str | None = Field(default=None, max_length=2000)


class StoredTestRunAccepted(BaseModel):
    status: Literal["queued"]
    runId: str
    testId: str


class GroupRunBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    platform: Literal["web", "ios", "android"] | None = None
    deviceModel: Literal["iphone", "ipad"] | None = None
    projectEnvironmentId: str | None = None
    targetUrl: str | None = Field(default=None, max_length=2000)
    environment: Literal["production", "staging", "preview", "custom"] | None = None
    commitSha: str | None = None
    prNumber: int | None = Field(default=None, gt=0)


class BatchStarted(BaseModel):
    status: Literal["queued", "cancelled"]
    groupId: str | None
    batchId: str
    runIds: list[str]
    queuedRunIds: list[str]
    cancelledRunIds: list[str]
    count: int


class BatchRerun(BatchStarted):
    sourceBatchId: str
    skippedTestIds: list[str]


class BatchCancelled(BaseModel):
    batchId: str
    cancelled: int
    alreadyFinished: int
    cancelledRunIds: list[str]
    alreadyFinishedRunIds: list[str]
