"""The web dashboard: server-rendered pages for people, beside the two token APIs.

Signed-in users (a session cookie, see ``sessions``) watch runs, their live logs and
results, cancel/retry/restart them as their role allows, see the queue and manage
their own API tokens. Every POST form carries a CSRF token.
"""

from __future__ import annotations

from runplane.api.dashboard.app import install_dashboard

__all__ = ["install_dashboard"]
