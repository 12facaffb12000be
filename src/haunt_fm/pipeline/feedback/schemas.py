"""Feedback bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from haunt_fm.pipeline.vibes import GENERAL_VIBE, VibeStr

# The largest integer JSON clients (JavaScript) hold exactly; ids never come near it.
MAX_ID = 2**53 - 1


class FeedbackIn(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "example": {"track_id": 88, "rating": "down", "profile": "antialias", "vibe": "general"}
        },
    )

    track_id: int = Field(ge=1, le=MAX_ID)
    rating: Literal["up", "down"]
    profile: str | None = Field(default=None, max_length=64, description="Profile name; default `default`.")
    vibe: VibeStr = Field(
        default=GENERAL_VIBE,
        description=(
            "Context of the rating: `general` (default) applies everywhere; any other vibe applies when "
            "that vibe is asked for (matched case- and whitespace-insensitively). At most 200 characters."
        ),
    )


class FeedbackOut(BaseModel):
    feedback_id: int
    track_id: int
    title: str
    artist: str
    profile: str
    rating: Literal["up", "down"]
    vibe: str
    created_at: datetime


class FeedbackSaved(FeedbackOut):
    replaced: bool = Field(
        description="True when this replaced an earlier rating for the same profile, track and vibe."
    )


class FeedbackList(BaseModel):
    feedback: list[FeedbackOut]


class FeedbackDeleted(FeedbackOut):
    deleted: bool = True
