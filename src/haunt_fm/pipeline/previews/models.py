"""The preview-lookup stage's work: tracks whose preview is still to be found (columns on `tracks`)."""

from __future__ import annotations

from haunt_fm.queue import Stage

# Listened tracks first (the taste profile needs them), then candidates by summed match. No
# `id` tie-breaker: the order then matches ix_tracks_preview_queue, which a backward scan can
# serve without sorting every pending track on each claim.
PREVIEW_STAGE = Stage(
    name="previews",
    table="tracks",
    prefix="preview_",
    order_by="listened DESC, discovery_score DESC",
    returning=("t.artist", "t.title", "t.listened", "t.discovery_score"),
)
