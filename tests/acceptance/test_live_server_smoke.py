"""The live-server fixture serves the real app over HTTP."""

from __future__ import annotations

import httpx

from tests.conftest import LiveServer


def test_live_server_answers_with_a_token(live_server: LiveServer) -> None:
    token = live_server.token()
    response = httpx.get(
        f"{live_server.url}/api/v1/runs", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
