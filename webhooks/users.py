"""`DELETE /v1/users/{user_id}`: an app erases one of its users' data (GDPR art. 17, CCPA)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from storage import erasure
from storage.states import DeletionReason
from webhooks.auth import authenticate_api_key
from webhooks.ingest import Ingestor
from webhooks.openapi import API_KEY_ONLY, errors

users_router = APIRouter()


class UserErased(BaseModel):
    """What was deleted: the user's events (this app's only), and how many of their alerts
    are queued for deletion in Slack (deleted by the worker shortly after)."""

    events: int
    slack_messages: int


# As long as an event's user_id can be: a longer one cannot have events.
UserId = Annotated[str, Path(max_length=255)]


@users_router.delete(
    "/v1/users/{user_id}",
    status_code=202,
    response_model=UserErased,
    responses=errors(401, 422, 503),
    openapi_extra={"security": API_KEY_ONLY},
)
async def delete_user(user_id: UserId, request: Request) -> JSONResponse:
    """Delete this app's events of the user, and the Slack messages of their downvotes."""
    ingestor: Ingestor = request.app.state.ingestor
    caller = authenticate_api_key(request.headers, ingestor.credentials)
    erased = await asyncio.to_thread(
        erasure.erase_in_batches, ingestor.sessions, erasure.of_user(user_id, caller.app_id),
        now=ingestor.clock.now(), reason=DeletionReason.FORGET, actor=f"api:{caller.app_name}",
        app_id=caller.app_id,
    )  # fmt: skip
    return JSONResponse(
        UserErased(events=erased.events, slack_messages=erased.slack_messages).model_dump(),
        status_code=202,
    )
