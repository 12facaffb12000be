"""Listen-event queries. Logging a listen is one round trip: it is the hot path."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from haunt_fm.pipeline.listens.rules import SKIP_MAX_SECONDS

# One statement decides and stores a listen (the webhook's hot path: one round trip):
# resolve the profile (explicit name > speaker mapping > default), find or create the track,
# and decide from the speaker's own sequence whether this report is a new listen:
#   grouped    a known group player containing this speaker plays the same track now;
#   duplicate  the same track for the same profile, or on the same speaker, within 60 s;
#   resumed    the speaker's previous listen is this track and it is still within that
#              track's length plus a slack (a fixed window when the length is unknown), or
#              its next listen is this track and starts within this one's length;
#   logged     anything else: stored.
# A logged listen also applies the skip rule (pipeline/listens/rules.py) on its speaker: the
# speaker's previous listen is marked skipped when this one started within its skip window, and
# this one is stored skipped when the speaker's next listen (one that arrived earlier) started
# within its own. Marks are never taken back.
# A group player's report (the group variant) also takes over its members' listens of the same
# track that began within 60 s of it, and records its members. Those writes cost a plain
# report three times the CPU even when they touch nothing, so plain reports use the plain
# variant, which answers 'regroup' (and writes nothing) for a known group that now reports no
# members: the group variant then forgets them.
# Every decision reads one snapshot. The track row's listen_seq, bumped by each statement that
# adds or removes a listen of the track, must still be the value that snapshot saw when the
# track row is locked; otherwise a concurrent statement changed this track's listens meanwhile,
# nothing is written and the status is 'stale' (the caller runs it again on a fresh snapshot).
_READS = """
    WITH prof AS (
        SELECT coalesce(
            (SELECT id FROM profiles WHERE name = :profile),
            (SELECT profile_id FROM speaker_mappings
              WHERE speaker_norm IN (:speaker_name_key, :speaker_entity_key)
              ORDER BY (speaker_norm = :speaker_name_key) DESC LIMIT 1),
            (SELECT id FROM profiles WHERE name = 'default')) AS id
    ), snap AS (
        SELECT id, listen_seq, duration_ms FROM tracks WHERE norm_key = :norm_key
    ), grp AS (
        SELECT e.id, e.profile_id
        FROM speaker_groups g
        CROSS JOIN LATERAL (
            SELECT e.id, e.profile_id, e.played_at FROM listen_events e
            WHERE e.speaker_key = g.group_key AND e.track_id = (SELECT id FROM snap)
              AND e.played_at > CAST(:t AS timestamptz) - make_interval(secs => :max_window_s)
              AND e.played_at < CAST(:t AS timestamptz) + interval '60 seconds'
              AND CAST(:t AS timestamptz) < e.played_at + make_interval(
                  secs => coalesce(coalesce(e.duration_s, :duration_s) + :slack_s, :unknown_s))
            ORDER BY e.played_at DESC LIMIT 1) e
        WHERE g.member_key = CAST(:speaker_key AS text)
        ORDER BY e.played_at DESC LIMIT 1
    ), dup AS (
        SELECT id, profile_id FROM (
            (SELECT e.id, e.profile_id, e.played_at FROM listen_events e
              WHERE e.track_id = (SELECT id FROM snap) AND e.profile_id = (SELECT id FROM prof)
                AND listen_window(e.played_at) && listen_window(CAST(:t AS timestamptz))
                AND NOT (coalesce(e.speaker_key, '') = ANY(CAST(:members AS text[])))
              ORDER BY e.played_at LIMIT 1)
            UNION ALL
            (SELECT e.id, e.profile_id, e.played_at FROM listen_events e
              WHERE e.speaker_key = CAST(:speaker_key AS text) AND e.track_id = (SELECT id FROM snap)
                AND e.played_at > CAST(:t AS timestamptz) - interval '60 seconds'
                AND e.played_at < CAST(:t AS timestamptz) + interval '60 seconds'
              ORDER BY e.played_at LIMIT 1)
        ) d ORDER BY played_at LIMIT 1
    ), prev AS (
        -- The speaker's listen before this one and the one after it (one that arrived earlier):
        -- the resume and skip rules both read them. A listen's length for the skip rule is its
        -- own, else its track's (read only when needed).
        SELECT e.id, e.profile_id, e.track_id, e.played_at, e.duration_s, e.skipped,
               coalesce(e.duration_s, (SELECT t.duration_ms FROM tracks t WHERE t.id = e.track_id) / 1000.0)
                   AS length_s
        FROM listen_events e
        WHERE e.speaker_key = CAST(:speaker_key AS text) AND e.played_at <= CAST(:t AS timestamptz)
        ORDER BY e.played_at DESC, e.id DESC LIMIT 1
    ), nxt AS (
        SELECT e.id, e.profile_id, e.track_id, e.played_at, e.duration_s
        FROM listen_events e
        WHERE e.speaker_key = CAST(:speaker_key AS text) AND e.played_at > CAST(:t AS timestamptz)
        ORDER BY e.played_at LIMIT 1
    ), res AS (
        -- The speaker's previous listen, or its next one (a report that arrives late, such as
        -- the real start of a play whose resume the webhook stored), of this same track.
        SELECT p.id, p.profile_id FROM prev p
        WHERE p.track_id = (SELECT id FROM snap)
          AND CAST(:t AS timestamptz) < p.played_at + make_interval(
              secs => coalesce(coalesce(p.duration_s, :duration_s) + :slack_s, :unknown_s))
        UNION ALL
        SELECT n.id, n.profile_id FROM nxt n
        WHERE n.track_id = (SELECT id FROM snap)
          AND n.played_at < CAST(:t AS timestamptz) + make_interval(
              secs => coalesce(coalesce(:duration_s, n.duration_s) + :slack_s, :unknown_s))
        LIMIT 1
    ), cut AS (
        -- The skip rule's two neighbours on the speaker: the listen before this one, when this
        -- one starts within its window; this one, when the listen after it starts within ours.
        SELECT p.id FROM prev p
        WHERE NOT p.skipped
          AND CAST(:t AS timestamptz) < p.played_at + make_interval(secs => {window_p})
    ), cut_short AS (
        SELECT EXISTS (
            SELECT 1 FROM nxt n
            WHERE n.played_at < CAST(:t AS timestamptz) + make_interval(secs => {window_me})
        ) AS skipped
    ), {changes} decision AS (
        SELECT CASE WHEN {hold} THEN 'regroup'
                    WHEN g.id IS NOT NULL THEN 'grouped' WHEN d.id IS NOT NULL THEN 'duplicate'
                    WHEN r.id IS NOT NULL THEN 'resumed' ELSE 'logged' END AS status,
               coalesce(g.id, d.id, r.id) AS match_id,
               coalesce(g.profile_id, d.profile_id, r.profile_id) AS match_profile_id
        FROM (SELECT 1) one LEFT JOIN grp g ON true LEFT JOIN dup d ON true LEFT JOIN res r ON true
    ), trk AS (
        INSERT INTO tracks (title, artist, album, norm_artist, norm_title, norm_key, source, listened,
                            listen_seq, play_count, last_played_at)
        VALUES (:title, :artist, :album, :norm_artist, :norm_title, :norm_key, 'listen', true, 1, 1, :t)
        ON CONFLICT (norm_key) DO UPDATE SET
            listened = true,
            album = coalesce(tracks.album, EXCLUDED.album),
            listen_seq = tracks.listen_seq + CASE
                WHEN (SELECT status FROM decision) = 'logged' {or_changes} THEN 1 ELSE 0 END,
            -- Seeds are expanded most played first (discovery).
            play_count = tracks.play_count
                         + CASE WHEN (SELECT status FROM decision) = 'logged' THEN 1 ELSE 0 END,
            last_played_at = CASE WHEN (SELECT status FROM decision) = 'logged'
                                  THEN greatest(tracks.last_played_at, EXCLUDED.last_played_at)
                                  ELSE tracks.last_played_at END
        WHERE tracks.listen_seq = (SELECT listen_seq FROM snap)
        RETURNING id, (xmax = 0) AS inserted
    ), {writes} ev AS (
        INSERT INTO listen_events (track_id, profile_id, played_at, title, artist, album, speaker_name,
                                   speaker_entity, speaker_key, media_content_id, duration_s, source,
                                   skipped)
        SELECT trk.id, prof.id, :t, :title, :artist, :album, :speaker_name,
               :speaker_entity, :speaker_key, :media_content_id, :duration_s, :source,
               cut_short.skipped
        FROM trk, prof, decision, cut_short {after_writes}
        WHERE decision.status = 'logged'
        ON CONFLICT DO NOTHING
        RETURNING id, profile_id
    ), skip AS (
        UPDATE listen_events SET skipped = true
        WHERE id IN (SELECT id FROM cut) AND EXISTS (SELECT 1 FROM ev)
        RETURNING profile_id
    ), skip_stale AS (
        -- Another profile's taste loses a listen without a new listen of its own: rebuild it.
        UPDATE profiles SET activity_at = clock_timestamp()
        WHERE id IN (SELECT profile_id FROM skip) AND id <> (SELECT id FROM prof)
    )
    SELECT CASE WHEN EXISTS (SELECT 1 FROM trk) THEN d.status ELSE 'stale' END AS status,
           coalesce((SELECT id FROM ev), d.match_id) AS event_id,
           coalesce((SELECT id FROM trk), (SELECT id FROM snap)) AS track_id,
           (SELECT name FROM profiles WHERE id = prof.id) AS resolved_profile,
           (SELECT name FROM profiles
             WHERE id = coalesce((SELECT profile_id FROM ev), d.match_profile_id, prof.id)) AS profile_name,
           -- A song never seen before needs a preview and tags: wake those stages on every machine.
           (SELECT count(pg_notify('haunt_fm_work', 'previews')) + count(pg_notify('haunt_fm_work', 'tags'))
            FROM trk WHERE trk.inserted) AS woke
    FROM decision d, prof
"""


def _skip_window(duration_s: str) -> str:
    """SQL for rules.skip_window_seconds of a duration in seconds (30 when unknown)."""
    return (
        f"CASE WHEN ({duration_s}) > 0 THEN least({SKIP_MAX_SECONDS}, ({duration_s}) / 2.0) "
        f"ELSE {SKIP_MAX_SECONDS} END"
    )


_WINDOWS = {
    "window_p": _skip_window("p.length_s"),
    "window_me": _skip_window(
        "coalesce(CAST(:duration_s AS float8), (SELECT duration_ms FROM snap) / 1000.0)"
    ),
}

_PLAIN_LOG_SQL = text(
    _READS.format(
        **_WINDOWS,
        changes="",
        # A known group reporting no members any more: the group variant must forget them.
        hold="CAST(:group_report AS boolean) AND EXISTS (SELECT 1 FROM speaker_groups "
        "WHERE group_key = CAST(:speaker_key AS text))",
        or_changes="",
        writes="",
        after_writes="",
    )
)

_GROUP_LOG_SQL = text(
    _READS.format(
        **_WINDOWS,
        changes="""folded AS (
        SELECT e.id FROM listen_events e
        WHERE e.speaker_key = ANY(CAST(:members AS text[])) AND e.track_id = (SELECT id FROM snap)
          AND e.played_at > CAST(:t AS timestamptz) - interval '60 seconds'
          AND e.played_at < CAST(:t AS timestamptz) + interval '60 seconds'
    ),""",
        hold="false",
        or_changes="OR EXISTS (SELECT 1 FROM folded)",
        writes="""fold AS (
        DELETE FROM listen_events
        WHERE id IN (SELECT id FROM folded) AND EXISTS (SELECT 1 FROM trk)
        RETURNING profile_id
    ), refresh AS (
        -- Those profiles lost a listen: their taste is rebuilt on next use.
        UPDATE profiles SET activity_at = now() WHERE id IN (SELECT profile_id FROM fold)
    ), forget AS (
        DELETE FROM speaker_groups
        WHERE group_key = CAST(:speaker_key AS text)
          AND NOT (member_key = ANY(CAST(:members AS text[]))) AND EXISTS (SELECT 1 FROM trk)
    ), remember AS (
        INSERT INTO speaker_groups (group_key, member_key)
        SELECT CAST(:speaker_key AS text), m FROM unnest(CAST(:members AS text[])) m
        WHERE EXISTS (SELECT 1 FROM trk)
        ON CONFLICT (group_key, member_key) DO UPDATE SET seen_at = now()
    ),""",
        # Reading fold's rows makes the members' listens go before this one is inserted.
        after_writes=", (SELECT count(*) FROM fold) f",
    )
)


async def log_listen(conn: AsyncConnection, params: dict[str, Any], *, group: bool) -> dict[str, Any]:
    """Decide and store one listen in one atomic statement (see above for `status`).

    `group`: the report comes from a group player (it lists members, or must forget them).
    """
    row = (await conn.execute(_GROUP_LOG_SQL if group else _PLAIN_LOG_SQL, params)).mappings().one()
    return dict(row)


_RECENT_SQL = text(
    """
    SELECT e.id AS event_id, e.track_id, t.title, t.artist, coalesce(e.album, t.album) AS album,
           p.name AS profile, e.speaker_name, e.speaker_entity, e.played_at,
           e.media_content_id, e.duration_s, e.source, e.skipped
    FROM listen_events e
    JOIN tracks t ON t.id = e.track_id
    JOIN profiles p ON p.id = e.profile_id
    WHERE (CAST(:profile_id AS bigint) IS NULL OR e.profile_id = :profile_id)
      AND (CAST(:speakers AS text[]) IS NULL
           OR lower(e.speaker_entity) = ANY(:speakers) OR lower(e.speaker_name) = ANY(:speakers))
    ORDER BY e.played_at DESC, e.id DESC
    LIMIT :limit
    """
)


async def recent(
    session: AsyncSession, *, profile_id: int | None, limit: int, speakers: Sequence[str] | None = None
) -> Sequence[Any]:
    """Newest first; `speakers` (lowercase names or entity ids) keeps only listens on those speakers."""
    params = {
        "profile_id": profile_id,
        "limit": limit,
        "speakers": None if speakers is None else list(speakers),
    }
    return (await session.execute(_RECENT_SQL, params)).mappings().all()


_TRACK_BY_KEY_SQL = text("SELECT id AS track_id, title, artist, album FROM tracks WHERE norm_key = :norm_key")


async def track_by_key(session: AsyncSession, *, norm_key: str) -> Any | None:
    """The track with this identity key, or None."""
    return (await session.execute(_TRACK_BY_KEY_SQL, {"norm_key": norm_key})).mappings().first()


# The speakers of the latest listens (an index scan on played_at), newest first per speaker.
_SPEAKERS_HEARD_SQL = text(
    """
    SELECT speaker_name, speaker_entity, max(played_at) AS last_played_at
    FROM (SELECT speaker_name, speaker_entity, played_at FROM listen_events
          ORDER BY played_at DESC LIMIT :window) e
    WHERE speaker_name IS NOT NULL OR speaker_entity IS NOT NULL
    GROUP BY speaker_name, speaker_entity
    ORDER BY last_played_at DESC
    """
)


async def speakers_heard(session: AsyncSession, *, window: int) -> Sequence[Any]:
    """(speaker_name, speaker_entity) pairs seen in the latest `window` listens, newest first."""
    return (await session.execute(_SPEAKERS_HEARD_SQL, {"window": window})).mappings().all()


# Players whose history reconciliation reads: entity ids among mapped speakers, the speakers
# of listens (a skip scan over ix_listen_events_speaker_played: one probe per speaker) and
# the groups and members seen.
_PLAYERS_SQL = text(
    """
    WITH RECURSIVE seen AS (
        (SELECT speaker_key FROM listen_events WHERE speaker_key IS NOT NULL
          ORDER BY speaker_key LIMIT 1)
        UNION ALL
        SELECT (SELECT e.speaker_key FROM listen_events e
                 WHERE e.speaker_key > seen.speaker_key ORDER BY e.speaker_key LIMIT 1)
        FROM seen WHERE seen.speaker_key IS NOT NULL
    ), candidates AS (
        SELECT speaker_key AS id FROM seen
        UNION SELECT speaker_norm FROM speaker_mappings
        UNION SELECT group_key FROM speaker_groups
        UNION SELECT member_key FROM speaker_groups
    )
    SELECT id FROM candidates WHERE id ~ '^media_player\\.[a-z0-9_]+$' ORDER BY id
    """
)

_MERGE_STATE_SQL = text(
    """
    INSERT INTO app_state (key, value, updated_at) VALUES (:key, CAST(:value AS jsonb), now())
    ON CONFLICT (key) DO UPDATE SET value = app_state.value || EXCLUDED.value, updated_at = now()
    """
)
_STATE_SQL = text("SELECT value FROM app_state WHERE key = :key")


async def known_players(session: AsyncSession) -> list[str]:
    """Entity ids of the media players that mappings, listens and groups name."""
    return [row[0] for row in await session.execute(_PLAYERS_SQL)]


async def get_state(session: AsyncSession, *, key: str) -> dict[str, Any]:
    """app_state[key], or an empty document."""
    value = (await session.execute(_STATE_SQL, {"key": key})).scalar_one_or_none()
    return dict(value or {})


async def merge_state(session: AsyncSession, *, key: str, value: dict[str, Any]) -> None:
    """Merge top-level keys into app_state[key]."""
    await session.execute(_MERGE_STATE_SQL, {"key": key, "value": json.dumps(value, default=str)})


# --- Batches of listens (history imports) ------------------------------------------------
# Two statements per batch: the second must see the tracks the first (or a concurrent
# writer) created, which a CTE of one statement could not. Each track's listens go in time
# order (tracks one after another, for index locality), so of two listens within 60 s the
# earlier one is kept, as the webhook would have; a listen near one already stored is a
# duplicate whichever batch or import it comes in.

_BATCH_TRACKS_SQL = text(
    """
    INSERT INTO tracks (title, artist, album, norm_artist, norm_title, norm_key, source, listened)
    SELECT u.title, u.artist, u.album, u.norm_artist, u.norm_title, u.norm_key, 'listen', true
    FROM unnest(CAST(:title AS text[]), CAST(:artist AS text[]), CAST(:album AS text[]),
                CAST(:norm_artist AS text[]), CAST(:norm_title AS text[]), CAST(:norm_key AS text[]))
         AS u(title, artist, album, norm_artist, norm_title, norm_key)
    ON CONFLICT (norm_key) DO NOTHING
    RETURNING id
    """
)

# The play count and last play move only by the listens actually stored, so importing the
# same history twice changes nothing.
_BATCH_LISTENS_SQL = text(
    """
    WITH ins AS (
        INSERT INTO listen_events (track_id, profile_id, played_at, title, artist, album, duration_s, source)
        SELECT t.id, :profile_id, u.played_at, u.title, u.artist, u.album, u.duration_s, :source
        FROM unnest(CAST(:norm_key AS text[]), CAST(:played_at AS timestamptz[]), CAST(:title AS text[]),
                    CAST(:artist AS text[]), CAST(:album AS text[]), CAST(:duration_s AS integer[]))
             WITH ORDINALITY AS u(norm_key, played_at, title, artist, album, duration_s, n)
        JOIN tracks t ON t.norm_key = u.norm_key
        ORDER BY t.id, u.played_at, u.n
        ON CONFLICT DO NOTHING
        RETURNING track_id, played_at
    ), played AS (
        -- listen_seq: the webhook's statement must see that this track's listens changed.
        UPDATE tracks t SET listened = true, play_count = t.play_count + c.n,
                            last_played_at = greatest(t.last_played_at, c.latest),
                            listen_seq = t.listen_seq + 1
        FROM (SELECT track_id, count(*) AS n, max(played_at) AS latest FROM ins GROUP BY track_id) c
        WHERE t.id = c.track_id
        RETURNING t.id
    )
    SELECT (SELECT count(*) FROM ins) AS inserted, (SELECT count(*) FROM played) AS tracks
    """
)


async def insert_tracks(session: AsyncSession, columns: dict[str, list[Any]]) -> int:
    """Create the tracks (one per identity key) that don't exist yet; returns how many were new."""
    return len((await session.execute(_BATCH_TRACKS_SQL, columns)).all())


async def insert_listens(
    session: AsyncSession, columns: dict[str, list[Any]], *, profile_id: int, source: str
) -> int:
    """Insert listens of known tracks unless they duplicate one (60 s rule); returns how many went in."""
    params = {**columns, "profile_id": profile_id, "source": source}
    return int((await session.execute(_BATCH_LISTENS_SQL, params)).mappings().one()["inserted"])
