"""Import every model so Base.metadata knows the whole schema (Alembic, tests)."""

from haunt_fm.db.rate_limits import RateLimitSlot
from haunt_fm.pipeline.discovery.models import TrackSimilarity
from haunt_fm.pipeline.embeddings.models import TextEmbedding, TrackEmbedding, WorkerState
from haunt_fm.pipeline.feedback.models import Feedback
from haunt_fm.pipeline.imports.models import Import
from haunt_fm.pipeline.listens.models import ListenEvent, SpeakerGroup
from haunt_fm.pipeline.playlists.models import Playlist, PlaylistTrack
from haunt_fm.pipeline.profiles.models import Profile, ProfileTaste, SpeakerMapping
from haunt_fm.pipeline.radio.models import Radio, RadioTrack
from haunt_fm.pipeline.status.models import AppState
from haunt_fm.pipeline.tags.models import TagLookup, TrackTag, VibeGrounding
from haunt_fm.pipeline.tracks.models import Track
from haunt_fm.queue.models import Job

__all__ = [
    "AppState",
    "Feedback",
    "Import",
    "Job",
    "ListenEvent",
    "Playlist",
    "PlaylistTrack",
    "Profile",
    "ProfileTaste",
    "Radio",
    "RadioTrack",
    "RateLimitSlot",
    "SpeakerGroup",
    "SpeakerMapping",
    "TagLookup",
    "TextEmbedding",
    "Track",
    "TrackEmbedding",
    "TrackSimilarity",
    "TrackTag",
    "VibeGrounding",
    "WorkerState",
]
