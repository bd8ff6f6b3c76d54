"""What the worker accepts from an agent's output document (any agent, ours or not)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runplane.execution.browser import AgentOutputInvalid, read_agent_output

PNG = b"\x89PNG\r\n\x1a\n" + b"0" * 32


def _read(tmp_path: Path, doc: Any) -> Any:
    shots = tmp_path / "shots"
    shots.mkdir(exist_ok=True)
    (shots / "ok.png").write_bytes(PNG)
    (tmp_path / "secret.txt").write_text("server secret")
    out = tmp_path / "output.json"
    out.write_text(json.dumps(doc) if not isinstance(doc, bytes) else doc.decode())
    return read_agent_output(out, shots)


def test_a_minimal_document_is_completed_with_defaults(tmp_path: Path) -> None:
    result = _read(tmp_path, {"result": "PASS", "extra": {"kept": False}})
    assert result.passed
    assert result.output == {
        "featureName": "",
        "result": "PASS",
        "description": "",
        "screenshots": [],
        "issues": [],
        "steps": [],
    }


def test_only_plain_names_inside_the_directory_are_kept_as_screenshots(tmp_path: Path) -> None:
    doc = {
        "result": "FAILED",
        "screenshots": ["ok.png", "../secret.txt", "/etc/hostname", ".hidden", "missing.png"],
        "issues": [
            {"name": "n", "description": "d", "url": "u", "screenshotUrl": "../secret.txt"},
            {"name": "n", "description": "d", "url": "u", "screenshotUrl": "ok.png"},
        ],
    }
    result = _read(tmp_path, doc)
    assert not result.passed
    assert result.output["screenshots"] == ["ok.png"]
    assert "screenshotUrl" not in result.output["issues"][0]
    assert result.output["issues"][1]["screenshotUrl"] == "ok.png"
    assert list(result.screenshots) == ["ok.png"]


@pytest.mark.parametrize(
    "doc",
    [
        {"result": "MAYBE"},
        {"result": "PASS", "issues": ["boom"]},
        {"result": "PASS", "steps": {}},
        {"result": "PASS", "steps": [{"title": "t", "status": "passed"}]},
        ["not", "an", "object"],
        b"{not json",
    ],
)
def test_a_malformed_document_is_refused(tmp_path: Path, doc: Any) -> None:
    with pytest.raises(AgentOutputInvalid):
        _read(tmp_path, doc)


def test_no_document_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AgentOutputInvalid):
        read_agent_output(tmp_path / "absent.json", tmp_path)
