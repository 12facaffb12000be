"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-24 01:36:39.907693
"""

from collections.abc import Sequence

import pgvector.sqlalchemy
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    # btree_gist lets the exclusion constraint below compare ids with '='.
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.create_table(
        "app_state",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_app_state")),
    )
    op.create_table(
        "profiles",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("activity_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("taste_embedding", pgvector.sqlalchemy.vector.VECTOR(dim=512), nullable=True),
        sa.Column("taste_built_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("taste_tracks_used", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profiles")),
        sa.UniqueConstraint("name", name=op.f("uq_profiles_name")),
    )
    op.create_table(
        "text_embeddings",
        sa.Column("text_norm", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("embedding", pgvector.sqlalchemy.vector.VECTOR(dim=512), nullable=True),
        sa.Column("model", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "requested_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("text_norm", name=op.f("pk_text_embeddings")),
    )
    op.create_table(
        "tracks",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("artist", sa.Text(), nullable=False),
        sa.Column("album", sa.Text(), nullable=True),
        sa.Column("norm_artist", sa.Text(), nullable=False),
        sa.Column("norm_title", sa.Text(), nullable=False),
        sa.Column("norm_key", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("source", sa.String(length=16), server_default="listen", nullable=False),
        sa.Column("listened", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("discovery_score", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("mbid", sa.Text(), nullable=True),
        sa.Column("lastfm_url", sa.Text(), nullable=True),
        sa.Column("lastfm_expanded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("preview_status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("preview_url", sa.Text(), nullable=True),
        sa.Column("itunes_track_id", sa.BigInteger(), nullable=True),
        sa.Column("itunes_album", sa.Text(), nullable=True),
        sa.Column("genre", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("artwork_url", sa.Text(), nullable=True),
        sa.Column("preview_attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("preview_error", sa.Text(), nullable=True),
        sa.Column("preview_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("preview_next_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("preview_lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("embedding_status", sa.String(length=16), server_default="waiting", nullable=False),
        sa.Column("embedding_attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("embedding_error", sa.Text(), nullable=True),
        sa.Column("embedding_next_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("embedding_lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("embedding_lease_owner", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracks")),
        sa.UniqueConstraint("norm_key", name=op.f("uq_tracks_norm_key")),
    )
    op.create_index(
        "ix_tracks_embedding_queue",
        "tracks",
        ["listened", "discovery_score"],
        unique=False,
        postgresql_where=sa.text("embedding_status = 'pending'"),
    )
    op.create_index("ix_tracks_embedding_status", "tracks", ["embedding_status"], unique=False)
    op.create_index(
        "ix_tracks_preview_queue",
        "tracks",
        ["listened", "discovery_score"],
        unique=False,
        postgresql_where=sa.text("preview_status = 'pending'"),
    )
    op.create_index("ix_tracks_preview_status", "tracks", ["preview_status"], unique=False)
    op.create_table(
        "worker_states",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("hostname", sa.Text(), nullable=False),
        sa.Column("pid", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=True),
        sa.Column("model_loaded", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("text_tower_ok", sa.Boolean(), nullable=True),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("last_batch_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("tracks_done", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column(
            "heartbeat_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker_states")),
    )
    op.create_table(
        "feedback",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("profile_id", sa.BigInteger(), nullable=False),
        sa.Column("track_id", sa.BigInteger(), nullable=False),
        sa.Column("rating", sa.Text(), nullable=False),
        sa.Column("vibe", sa.Text(), server_default="general", nullable=False),
        sa.Column("vibe_norm", sa.Text(), server_default="general", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("rating IN ('up', 'down')", name=op.f("ck_feedback_rating")),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profiles.id"], name=op.f("fk_feedback_profile_id_profiles")
        ),
        sa.ForeignKeyConstraint(
            ["track_id"], ["tracks.id"], name=op.f("fk_feedback_track_id_tracks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
        sa.UniqueConstraint("profile_id", "track_id", "vibe_norm", name="uq_feedback_profile_track_vibe"),
    )
    op.create_index("ix_feedback_profile_created", "feedback", ["profile_id", "created_at"], unique=False)
    op.create_table(
        "listen_events",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("track_id", sa.BigInteger(), nullable=False),
        sa.Column("profile_id", sa.BigInteger(), nullable=False),
        sa.Column("played_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("artist", sa.Text(), nullable=False),
        sa.Column("album", sa.Text(), nullable=True),
        sa.Column("speaker_name", sa.Text(), nullable=True),
        sa.Column("speaker_entity", sa.Text(), nullable=True),
        sa.Column("media_content_id", sa.Text(), nullable=True),
        sa.Column("duration_s", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profiles.id"], name=op.f("fk_listen_events_profile_id_profiles")
        ),
        sa.ForeignKeyConstraint(
            ["track_id"], ["tracks.id"], name=op.f("fk_listen_events_track_id_tracks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_listen_events")),
    )
    op.create_index("ix_listen_events_played", "listen_events", ["played_at"], unique=False)
    op.create_index(
        "ix_listen_events_profile_received", "listen_events", ["profile_id", "received_at"], unique=False
    )
    op.create_index(
        "ix_listen_events_profile_played", "listen_events", ["profile_id", "played_at"], unique=False
    )
    op.create_index("ix_listen_events_track", "listen_events", ["track_id"], unique=False)
    op.create_table(
        "playlists",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("profile_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("params", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("vibe", sa.Text(), nullable=True),
        sa.Column("alpha", sa.Float(), nullable=True),
        sa.Column("known_count", sa.Integer(), nullable=False),
        sa.Column("new_count", sa.Integer(), nullable=False),
        sa.Column("speaker_entity", sa.Text(), nullable=True),
        sa.Column("playback", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profiles.id"], name=op.f("fk_playlists_profile_id_profiles")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_playlists")),
    )
    op.create_table(
        "speaker_mappings",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("profile_id", sa.BigInteger(), nullable=False),
        sa.Column("speaker", sa.Text(), nullable=False),
        sa.Column("speaker_norm", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_speaker_mappings_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_speaker_mappings")),
        sa.UniqueConstraint("speaker_norm", name=op.f("uq_speaker_mappings_speaker_norm")),
    )
    op.create_index(op.f("ix_speaker_mappings_profile_id"), "speaker_mappings", ["profile_id"], unique=False)
    op.create_table(
        "track_embeddings",
        sa.Column("track_id", sa.BigInteger(), nullable=False),
        sa.Column("embedding", pgvector.sqlalchemy.vector.VECTOR(dim=512), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("pipeline_version", sa.Integer(), nullable=False),
        sa.Column("windows", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["track_id"], ["tracks.id"], name=op.f("fk_track_embeddings_track_id_tracks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("track_id", name=op.f("pk_track_embeddings")),
    )
    op.create_index("ix_track_embeddings_created", "track_embeddings", ["created_at"], unique=False)
    op.create_table(
        "track_similarities",
        sa.Column("seed_track_id", sa.BigInteger(), nullable=False),
        sa.Column("candidate_track_id", sa.BigInteger(), nullable=False),
        sa.Column("match", sa.Float(), nullable=False),
        sa.Column("source", sa.Text(), server_default="lastfm", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["candidate_track_id"],
            ["tracks.id"],
            name=op.f("fk_track_similarities_candidate_track_id_tracks"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["seed_track_id"],
            ["tracks.id"],
            name=op.f("fk_track_similarities_seed_track_id_tracks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("seed_track_id", "candidate_track_id", name=op.f("pk_track_similarities")),
    )
    op.create_index(
        "ix_track_similarities_candidate", "track_similarities", ["candidate_track_id"], unique=False
    )
    op.create_table(
        "playlist_tracks",
        sa.Column("playlist_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("track_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["playlist_id"],
            ["playlists.id"],
            name=op.f("fk_playlist_tracks_playlist_id_playlists"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["track_id"], ["tracks.id"], name=op.f("fk_playlist_tracks_track_id_tracks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("playlist_id", "position", name=op.f("pk_playlist_tracks")),
    )
    # The 60-second duplicate rule, enforced by the database: no two listens of one track
    # for one profile whose [played_at, played_at + 60 s) windows overlap, i.e. whose
    # played_at are less than 60 s apart. Concurrent identical webhooks store once.
    # Adding a fixed number of seconds to a timestamptz does not depend on the time zone,
    # so this wrapper may honestly be declared IMMUTABLE (index expressions require it).
    op.execute(
        "CREATE FUNCTION listen_window(ts timestamptz) RETURNS tstzrange "
        "LANGUAGE sql IMMUTABLE PARALLEL SAFE "
        "AS $$ SELECT tstzrange(ts, ts + interval '60 seconds', '[)') $$"
    )
    op.execute(
        "ALTER TABLE listen_events ADD CONSTRAINT ex_listen_events_dedupe_60s EXCLUDE USING gist "
        "(track_id WITH =, profile_id WITH =, listen_window(played_at) WITH &&)"
    )
    # Cosine-distance ANN index for recommendations.
    op.execute(
        "CREATE INDEX ix_track_embeddings_hnsw ON track_embeddings "
        "USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
    )
    op.execute(
        "INSERT INTO profiles (name, display_name) VALUES ('default', 'Default') ON CONFLICT DO NOTHING"
    )


def downgrade() -> None:
    op.drop_table("playlist_tracks")
    op.drop_index("ix_track_similarities_candidate", table_name="track_similarities")
    op.drop_table("track_similarities")
    op.drop_table("track_embeddings")
    op.drop_index(op.f("ix_speaker_mappings_profile_id"), table_name="speaker_mappings")
    op.drop_table("speaker_mappings")
    op.drop_table("playlists")
    op.drop_index("ix_listen_events_track", table_name="listen_events")
    op.drop_index("ix_listen_events_profile_played", table_name="listen_events")
    op.drop_index("ix_listen_events_profile_received", table_name="listen_events")
    op.drop_index("ix_listen_events_played", table_name="listen_events")
    op.drop_table("listen_events")
    op.drop_index("ix_feedback_profile_created", table_name="feedback")
    op.drop_table("feedback")
    op.drop_table("worker_states")
    op.drop_index("ix_tracks_preview_status", table_name="tracks")
    op.drop_index(
        "ix_tracks_preview_queue", table_name="tracks", postgresql_where=sa.text("preview_status = 'pending'")
    )
    op.drop_index("ix_tracks_embedding_status", table_name="tracks")
    op.drop_index(
        "ix_tracks_embedding_queue",
        table_name="tracks",
        postgresql_where=sa.text("embedding_status = 'pending'"),
    )
    op.drop_table("tracks")
    op.drop_table("text_embeddings")
    op.drop_table("profiles")
    op.drop_table("app_state")
    op.execute("DROP FUNCTION IF EXISTS listen_window(timestamptz)")
    op.execute("DROP EXTENSION IF EXISTS btree_gist")
