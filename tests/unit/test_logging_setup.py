"""The log line formats and the run id taken from the context (no I/O but a StringIO)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from runplane.config import Settings
from runplane.logging_setup import (
    HANDLER_NAME,
    bound_run_id,
    configure_logging,
    current_run_id,
    make_handler,
)


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of its own writing JSON lines to a string (not through the root logger)."""
    stream = io.StringIO()
    logger = logging.getLogger("runplane.tests.logging_setup")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = make_handler("json", stream)
    logger.addHandler(handler)
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_json_line_has_the_fields_and_the_extras(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = logged
    logger.info("run %s of %s", 3, "demo/x", extra={"project": "demo/x", "attempt": 2})
    (line,) = lines(stream)
    assert list(line)[:4] == ["ts", "level", "logger", "message"]
    assert line["level"] == "INFO"
    assert line["logger"] == "runplane.tests.logging_setup"
    assert line["message"] == "run 3 of demo/x"
    assert line["project"] == "demo/x" and line["attempt"] == 2
    assert "run_id" not in line and "exc_info" not in line and "args" not in line
    ts = datetime.fromisoformat(line["ts"])
    assert ts.utcoffset() is not None and ts.utcoffset() == UTC.utcoffset(None)
    assert abs((datetime.now(UTC) - ts).total_seconds()) < 60


def test_the_run_id_comes_from_the_context_and_is_reset_after(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = logged
    with bound_run_id(7):
        logger.info("inside")
        with bound_run_id(8):
            logger.info("nested")
        logger.info("inside again")
        # An explicit run id wins over the context's.
        logger.info("other run", extra={"run_id": 9})
    logger.info("outside")
    assert current_run_id.get() is None
    assert [line.get("run_id") for line in lines(stream)] == [7, 8, 7, 9, None]


def test_tasks_started_for_a_run_inherit_its_id(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = logged

    async def side_loop() -> None:
        await asyncio.sleep(0)
        logger.info("from a side task")

    async def execute(run_id: int) -> None:
        with bound_run_id(run_id):
            await asyncio.create_task(side_loop())

    async def worker_loop() -> None:
        # Two runs awaited one after the other in one task, as the local dispatcher does.
        await execute(1)
        await execute(2)
        logger.info("between runs")

    asyncio.run(worker_loop())
    assert [line.get("run_id") for line in lines(stream)] == [1, 2, None]


def test_exceptions_and_unencodable_extras(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = logged
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("it broke", extra={"path": object()})
    (line,) = lines(stream)
    assert line["level"] == "ERROR"
    assert line["exc_info"].startswith("Traceback") and "ValueError: boom" in line["exc_info"]
    assert line["path"].startswith("<object object")


def test_uvicorn_access_lines_become_fields(logged: tuple[logging.Logger, io.StringIO]) -> None:
    _, stream = logged
    access = logging.getLogger("uvicorn.access")
    handler = make_handler("json", stream)
    access.addHandler(handler)
    old_level, old_propagate = access.level, access.propagate
    access.setLevel(logging.INFO)
    access.propagate = False
    try:
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/api/v1/runs", "1.1", 200)
    finally:
        access.removeHandler(handler)
        access.setLevel(old_level)
        access.propagate = old_propagate
    (line,) = lines(stream)
    assert line["message"] == '127.0.0.1:5000 - "GET /api/v1/runs HTTP/1.1" 200'
    assert (line["method"], line["path"], line["status"]) == ("GET", "/api/v1/runs", 200)
    assert line["client"] == "127.0.0.1:5000"


def test_the_text_format_names_the_run() -> None:
    stream = io.StringIO()
    handler = make_handler("text", stream)
    record = logging.LogRecord("runplane.x", logging.WARNING, __file__, 1, "lease lost", None, None)
    with bound_run_id(12):
        handler.handle(record)
    handler.handle(logging.LogRecord("runplane.x", logging.INFO, __file__, 1, "idle", None, None))
    first, second = stream.getvalue().splitlines()
    assert first.endswith("WARNING runplane.x [run 12] lease lost")
    assert second.endswith("INFO runplane.x idle")


def test_configure_logging_replaces_only_its_own_handler() -> None:
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    try:
        configure_logging("json", logging.DEBUG)
        configure_logging("text", "WARNING")
        ours = [h for h in root.handlers if h.get_name() == HANDLER_NAME]
        assert len(ours) == 1
        assert ours[0].formatter is not None and type(ours[0].formatter) is logging.Formatter
        assert [h for h in root.handlers if h not in ours] == before
        assert root.level == logging.WARNING
    finally:
        for handler in root.handlers[:]:
            if handler not in before:
                root.removeHandler(handler)
        root.setLevel(level)
    with pytest.raises(ValueError, match="log format"):
        make_handler("xml")


def test_the_setting_reads_runplane_log_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNPLANE_LOG_FORMAT", raising=False)
    assert Settings().log_format == "text"
    monkeypatch.setenv("RUNPLANE_LOG_FORMAT", "json")
    assert Settings().log_format == "json"
    monkeypatch.setenv("RUNPLANE_LOG_FORMAT", "xml")
    with pytest.raises(ValidationError):
        Settings()
