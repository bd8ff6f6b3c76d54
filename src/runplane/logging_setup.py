"""Process-wide logging: one stderr handler, as text for people or as JSON lines for machines.

``current_run_id`` names the run whose work is being done (``execute_run`` binds it);
``RunIdFilter`` copies it onto every record the handler sees, so each line a worker
writes for a run can be found by that run's id. The filter sits on the handler, not on a
logger: logger filters do not apply to records propagated from child loggers.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal, TextIO, get_args

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[str, ...] = get_args(LogFormat)

#: The run this task works for; tasks created while it is set inherit it.
current_run_id: ContextVar[int | None] = ContextVar("runplane_current_run_id", default=None)

#: Names our handler, so that configuring again replaces it and leaves others alone.
HANDLER_NAME = "runplane"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(run_suffix)s %(message)s"

#: Attributes every ``LogRecord`` has; anything else on a record is an ``extra``.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "run_id",
    "run_suffix",
}
#: uvicorn's ANSI-coloured copy of the message: noise in a JSON line.
_DROPPED_EXTRAS = frozenset({"color_message"})


@contextmanager
def bound_run_id(run_id: int) -> Iterator[None]:
    """``current_run_id`` is ``run_id`` inside the block and what it was before after it.

    Reset rather than merely set: a dispatcher that awaits ``execute_run`` in a
    long-lived loop would otherwise stamp that run's id on its later lines.
    """
    token = current_run_id.set(run_id)
    try:
        yield
    finally:
        current_run_id.reset(token)


class RunIdFilter(logging.Filter):
    """Adds ``run_id`` (the context's, unless the call passed one in ``extra``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        run_id = getattr(record, "run_id", None)
        if run_id is None:
            run_id = current_run_id.get()
        # As ``extra=`` does it: attributes LogRecord's type does not declare.
        record.__dict__["run_id"] = run_id
        record.__dict__["run_suffix"] = f" [run {run_id}]" if run_id is not None else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``message``, then the rest."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        run_id = getattr(record, "run_id", None)
        if run_id is not None:
            payload["run_id"] = run_id
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            payload["exc_info"] = record.exc_text
        if record.stack_info:
            payload["stack_info"] = self.formatStack(record.stack_info)
        payload.update(_access_fields(record))
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and key not in _DROPPED_EXTRAS and key not in payload:
                payload[key] = value
        # default=str: an extra that JSON cannot encode still logs, as its str().
        return json.dumps(payload, default=str, ensure_ascii=False)


def _access_fields(record: logging.LogRecord) -> dict[str, Any]:
    """uvicorn's access lines as fields (their format puts everything in ``args``)."""
    if record.name != "uvicorn.access" or not isinstance(record.args, tuple):
        return {}
    if len(record.args) != 5:
        return {}
    client, method, path, http_version, status = record.args
    return {
        "client": client,
        "method": method,
        "path": path,
        "http_version": http_version,
        "status": status,
    }


def make_handler(log_format: str, stream: TextIO | None = None) -> logging.Handler:
    """The handler ``configure_logging`` installs (also used by tests on their own stream)."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.addFilter(RunIdFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    return handler


def configure_logging(log_format: str, level: int | str = logging.INFO) -> None:
    """Route every logger (uvicorn's and procrastinate's too) to one stderr handler.

    uvicorn must be started with ``log_config=None`` so that its loggers propagate
    here instead of getting handlers of their own.
    """
    handler = make_handler(log_format)
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == HANDLER_NAME:
            root.removeHandler(existing)
            existing.close()
    root.addHandler(handler)
    root.setLevel(level)
