"""runplane: a self-hosted test-run platform with two API dialects over one run engine."""

from __future__ import annotations

__version__ = "0.1.0"
