"""Tag responses, and how a vibe was understood (`vibe_basis`)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class VibeBasis(BaseModel):
    """How a vibe was understood: what its vector was made of."""

    text: bool = Field(
        description="The CLAP text tower's vector of the vibe joined the blend (only when the model's text "
        "tower passed its self-test)."
    )
    tags: list[str] = Field(description="The library's Last.fm tags the vibe was matched to (normalised).")
    tag_tracks: int = Field(description="Embedded tracks behind the tag centroid.")
    discovering: bool = Field(
        description="Last.fm `tag.getTopTracks` lookups for the vibe's tags or words are queued or running: "
        "the library is growing toward it."
    )


class TagOut(BaseModel):
    tag: str = Field(description="The normalised tag (see the README's tag normalisation rule).")
    weight: int = Field(description="Summed Last.fm weight (0..100 per track) over the tracks carrying it.")
    tracks: int = Field(description="Tracks carrying it.")
    embedded: int = Field(description="Of those, tracks embedded by the current model (what a vibe can use).")


class TagsOut(BaseModel):
    profile: str | None = Field(
        description="The profile whose listened tracks were counted; null: the library."
    )
    tags: list[TagOut]
