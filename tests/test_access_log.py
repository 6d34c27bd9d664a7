"""`downvote serve`'s access log writes uvicorn's own line, only cheaper."""

from __future__ import annotations

import logging

from hypothesis import given
from hypothesis import strategies as st
from uvicorn.config import LOGGING_CONFIG
from uvicorn.logging import AccessFormatter

from bot.cli.access_log import AccessLineFormatter

UVICORN = AccessFormatter(fmt=LOGGING_CONFIG["formatters"]["access"]["fmt"], use_colors=False)


def access_record(level: int, args: tuple[str, str, str, str, int]) -> logging.LogRecord:
    """A record as uvicorn's httptools protocol logs one per response."""
    return logging.LogRecord(
        "uvicorn.access", level, __file__, 1, '%s - "%s %s HTTP/%s" %d', args, None
    )


@given(
    level=st.sampled_from([logging.DEBUG, logging.INFO, logging.WARNING, logging.CRITICAL]),
    client=st.from_regex(r"\A(127\.0\.0\.1:[0-9]{1,5}|\[::1\]:[0-9]{1,5}|-)\Z"),
    method=st.sampled_from(["GET", "POST", "DELETE", "PATCH"]),
    path=st.text(min_size=1, max_size=40).map(lambda text: "/" + text),
    version=st.sampled_from(["1.0", "1.1", "2"]),
    status=st.integers(min_value=100, max_value=599),  # unassigned codes too (no phrase)
)
def test_the_line_is_uvicorn_s_own(
    level: int, client: str, method: str, path: str, version: str, status: int
) -> None:
    record = access_record(level, (client, method, path, version, status))
    assert AccessLineFormatter().format(record) == UVICORN.format(record)


def test_a_feedback_post_reads_as_it_always_has() -> None:
    record = access_record(logging.INFO, ("127.0.0.1:5555", "POST", "/v1/feedback", "1.1", 202))
    assert AccessLineFormatter().format(record) == (
        'INFO:     127.0.0.1:5555 - "POST /v1/feedback HTTP/1.1" 202 Accepted'
    )
