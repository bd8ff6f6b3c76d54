"""What a browser run may load, by policy (literal addresses only: no DNS here)."""

from __future__ import annotations

import pytest

from runplane.agent.network import NetworkGuard
from runplane.domain.network import NetworkPolicy

CASES = [
    # url, allowed under any / private / public
    ("http://93.184.216.34/", True, True, True),
    ("https://10.1.2.3/app", True, True, False),
    ("http://192.168.0.10:8080/", True, True, False),
    ("http://127.0.0.1:8000/", True, False, False),
    ("http://[::1]/", True, False, False),
    ("http://[::ffff:127.0.0.1]/", True, False, False),
    ("http://169.254.169.254/latest/meta-data", True, False, False),
    ("http://localhost/", True, False, False),
    ("http://app.localhost/", True, False, False),
    ("http://0.0.0.0/", True, False, False),
    ("data:text/html,hi", True, True, True),
    ("about:blank", True, True, True),
    ("file:///etc/passwd", True, False, False),
]


@pytest.mark.parametrize(("url", "any_", "private", "public"), CASES)
async def test_policy(url: str, any_: bool, private: bool, public: bool) -> None:
    for policy, allowed in (
        (NetworkPolicy.ANY, any_),
        (NetworkPolicy.PRIVATE, private),
        (NetworkPolicy.PUBLIC, public),
    ):
        problem = await NetworkGuard(policy, lambda _: None).problem(url)
        assert (problem is None) is allowed, (policy, url, problem)
