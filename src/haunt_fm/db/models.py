"""Import every model so Base.metadata knows the whole schema (Alembic, tests)."""

from haunt_fm.pipeline.discovery.models import TrackSimilarity
from haunt_fm.pipeline.embeddings.models import TextEmbedding, TrackEmbedding, WorkerState
from haunt_fm.pipeline.feedback.models import Feedback
from haunt_fm.pipeline.listens.models import ListenEvent, SpeakerGroup
from haunt_fm.pipeline.playlists.models import Playlist, PlaylistTrack
from haunt_fm.pipeline.profiles.models import Profile, SpeakerMapping
from haunt_fm.pipeline.status.models import AppState, RateLimitSlot
from haunt_fm.pipeline.tracks.models import Track

__all__ = [
    "AppState",
    "Feedback",
    "ListenEvent",
    "Playlist",
    "PlaylistTrack",
    "Profile",
    "RateLimitSlot",
    "SpeakerGroup",
    "SpeakerMapping",
    "TextEmbedding",
    "Track",
    "TrackEmbedding",
    "TrackSimilarity",
    "WorkerState",
]
