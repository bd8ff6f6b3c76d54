"""Settings, read from ``RUNPLANE_*`` environment variables.

No module-level instance: the CLI and the tests build their own and pass them in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from runplane.domain.network import NetworkPolicy


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RUNPLANE_", extra="ignore")

    #: Where the SQLite file, the secret key and run workspaces live.
    data_dir: Path = Path(".runplane")
    #: SQLAlchemy URL; empty means the embedded SQLite file in ``data_dir``.
    database_url: str = ""
    #: Key for the keyed hash of API tokens; empty means ``data_dir/secret.key``.
    secret_key: str = ""
    #: Parallel runs executed by the in-process worker pool.
    workers: int = Field(default=2, ge=0, le=256)
    #: Database connections a process keeps open (as many again may open under load).
    #: Runs share them: a worker with 50 runs needs about as many as one with 2.
    database_pool_size: int = Field(default=8, ge=1, le=500)
    #: A worker must renew its lease on a running run within this time.
    lease_seconds: float = Field(default=30.0, gt=0)
    #: How often the reaper looks for runs whose lease expired.
    reaper_interval_seconds: float = Field(default=10.0, gt=0)
    #: Time between SIGTERM and SIGKILL when a run's process tree is stopped.
    grace_period_seconds: float = Field(default=3.0, ge=0)
    #: How often a worker re-reads the run's status to notice a cancel from elsewhere.
    cancel_poll_seconds: float = Field(default=1.0, gt=0)
    #: How long a cancel of a running run waits for the run to be stopped before answering.
    cancel_wait_seconds: float = Field(default=5.0, ge=0)
    #: How often idle workers look for queued runs submitted by another process.
    dispatch_poll_seconds: float = Field(default=1.0, gt=0)
    #: Output kept per run; the rest is dropped and the truncation noted in the log.
    max_log_bytes: int = Field(default=5_000_000, ge=1024)
    #: A log stream (``/logs/stream``) with nothing new sends a keep-alive comment this often.
    log_stream_keepalive_seconds: float = Field(default=15.0, gt=0)
    #: A log stream closes (without ``end``) after this long; the client resumes with
    #: ``Last-Event-ID``, so no request holds a connection forever.
    log_stream_max_seconds: float = Field(default=3600.0, gt=0)
    #: Largest sample (or extra file) accepted by an upload.
    max_sample_bytes: int = Field(default=4 * 1024**3, ge=1)
    #: Where samples, outputs, screenshots and artifacts are stored (content-addressed).
    #: Empty: the local directory ``data_dir/blobs``. ``s3://bucket/optional/prefix``:
    #: an S3-compatible bucket, so workers on several hosts share storage. Credentials
    #: are not settings: boto3 reads the standard AWS sources (``AWS_ACCESS_KEY_ID`` /
    #: ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``AWS_PROFILE`` and
    #: ``~/.aws/config``, or an instance/container role).
    blob_url: str = ""
    #: Endpoint of an S3-compatible server (e.g. ``http://minio:9000``); empty: AWS S3.
    s3_endpoint_url: str = ""
    #: Region of the bucket (S3-compatible servers mostly accept any value).
    s3_region: str = "us-east-1"
    #: Regression tests run at once when the project does not say (0: CPU count).
    regression_concurrency: int = Field(default=0, ge=0)
    #: Default time limit of a project's run.
    default_timeout_seconds: int = Field(default=3600, ge=1)
    #: Rate limits of the Sample Platform dialect (requests per window).
    rate_limit_enabled: bool = True
    rate_limit_reads: int = Field(default=120, ge=1)
    rate_limit_writes: int = Field(default=20, ge=1)
    rate_limit_window_seconds: int = Field(default=60, ge=1)
    rate_limit_token_create: int = Field(default=5, ge=1)
    rate_limit_token_create_window_seconds: int = Field(default=900, ge=1)
    #: Redis holding the rate-limit counters, so several API processes share one budget
    #: (e.g. ``redis://127.0.0.1:6379/0``); empty: each process counts in its own memory.
    redis_url: str = ""
    #: ``text`` (for people at a terminal) or ``json`` (one object per line, with ``run_id``
    #: on a run's lines: for a log shipper). Read by ``serve`` and ``worker``.
    log_format: Literal["text", "json"] = "text"

    #: Serve the demo shop (a target for browser runs) at ``/demo-site/`` (``serve --demo``).
    demo_site: bool = False
    #: How clients reach this server; links in webhook payloads start with it.
    public_url: str = "http://127.0.0.1:8000"
    #: Browser runs (Tester Army dialect): time limit of one run.
    browser_timeout_seconds: int = Field(default=600, ge=1)
    #: Per action/expectation timeout inside the browser agent.
    browser_step_timeout_ms: int = Field(default=10_000, ge=100)
    #: External agent command (stdin: run input JSON, stdout: output JSON); empty: built-in.
    agent_command: str = ""
    #: What browser runs may load: ``private`` (public and RFC 1918 addresses, never this
    #: machine or link-local metadata services), ``public``, or ``any``.
    browser_network: NetworkPolicy = NetworkPolicy.PRIVATE
    #: Chromium the built-in agent drives; empty: ``chromium`` on PATH.
    chromium_path: str = ""
    #: Runs a user may create per UTC day through the Tester Army dialect (0: no limit).
    usage_runs_per_day: int = Field(default=1000, ge=0)
    #: Longest ``?wait=`` a synchronous run creation may ask for.
    max_wait_seconds: int = Field(default=300, ge=1)
    #: Webhook deliveries: key of the HMAC signature (empty: derived from the secret key).
    webhook_secret: str = ""
    #: Allow webhook URLs on loopback/private addresses (tests, closed networks).
    webhook_allow_private: bool = False
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    #: Retries after the first attempt; the n-th waits ``webhook_backoff_seconds * 2**(n-1)``.
    webhook_retries: int = Field(default=3, ge=0, le=10)
    webhook_backoff_seconds: float = Field(default=1.0, ge=0)
    webhook_poll_seconds: float = Field(default=0.5, gt=0)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'runplane.db').resolve()}"

    @property
    def blobs_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def workspaces_dir(self) -> Path:
        return self.data_dir / "workspaces"
