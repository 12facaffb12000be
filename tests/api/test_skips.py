"""Skips: a listen cut short by the next listen on the same speaker (webhook, over HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

Factory = async_sessionmaker[AsyncSession]
T0 = datetime(2026, 3, 1, 18, 0, tzinfo=UTC)
STUDY = "media_player.study_speaker_2"
KITCHEN = "media_player.kitchen_stereo_2"


async def log(http: httpx.AsyncClient, title: str, seconds: float, **extra: Any) -> int:
    body = {
        "title": title,
        "artist": "Band",
        "played_at": (T0 + timedelta(seconds=seconds)).isoformat(),
        **extra,
    }
    r = await http.post("/api/history/webhook", json=body)
    assert r.status_code == 201, r.text
    return int(r.json()["event_id"])


async def skipped(http: httpx.AsyncClient, profile: str | None = None) -> dict[str, bool]:
    params = {"limit": 100} | ({"profile": profile} if profile else {})
    events = (await http.get("/api/history/recent", params=params)).json()["events"]
    return {e["title"]: e["skipped"] for e in events}


async def test_the_next_track_on_the_speaker_within_the_window_marks_a_skip(
    client: httpx.AsyncClient,
) -> None:
    await log(client, "A", 0, speaker_entity=STUDY)
    await log(client, "B", 10, speaker_entity=STUDY)  # A lasted 10 s: skipped
    await log(client, "C", 10 + 30, speaker_entity=STUDY)  # B lasted 30 s: the window is < 30 s
    await log(client, "D", 40 + 29.5, speaker_entity=STUDY)  # C lasted 29.5 s: skipped
    await log(client, "E", 400, speaker_entity=STUDY, duration_s=20)  # E's window: 10 s (half of 20)
    await log(client, "F", 411, speaker_entity=STUDY)  # E lasted 11 s of 20: played through
    await log(client, "G", 1000, speaker_entity=STUDY, duration_s=20)
    await log(client, "H", 1009, speaker_entity=STUDY)  # G lasted 9 s of 20: skipped
    assert await skipped(client) == {
        "A": True, "B": False, "C": True, "D": False, "E": False, "F": False, "G": True, "H": False
    }  # fmt: skip


async def test_speakers_are_separate_and_the_entity_wins_over_the_name(client: httpx.AsyncClient) -> None:
    await log(client, "Study 1", 0, speaker_entity=STUDY, speaker_name="Study speaker")
    await log(client, "Kitchen 1", 5, speaker_entity=KITCHEN, speaker_name="Study speaker")  # another entity
    await log(client, "Named 1", 100, speaker_name="Porch")
    await log(client, "Named 2", 105, speaker_name="Porch")  # same name, no entity: same speaker
    await log(client, "Nowhere 1", 200)
    await log(client, "Nowhere 2", 201)  # no speaker at all: nothing to compare
    assert await skipped(client) == {
        "Study 1": False, "Kitchen 1": False, "Named 1": True, "Named 2": False,
        "Nowhere 1": False, "Nowhere 2": False,
    }  # fmt: skip


async def test_the_tracks_known_duration_sets_the_window(client: httpx.AsyncClient, db: Factory) -> None:
    await log(client, "Short", 0, speaker_entity=STUDY)
    async with db() as s, s.begin():  # iTunes told us: 16 s long, so the window is 8 s
        await s.execute(text("UPDATE tracks SET duration_ms = 16000 WHERE title = 'Short'"))
    # Played again more than 10 minutes later (sooner, with no duration in the report, it would
    # read as a resume of the same play).
    await log(client, "Short", 700, speaker_entity=STUDY)
    await log(client, "Next", 709, speaker_entity=STUDY)  # 9 s of 16: played through
    await log(client, "Short", 1400, speaker_entity=STUDY)
    await log(client, "Next", 1407, speaker_entity=STUDY)  # 7 s of 16: skipped
    events = (await client.get("/api/history/recent", params={"limit": 10})).json()["events"]
    assert [(e["title"], e["skipped"]) for e in events] == [
        ("Next", False), ("Short", True), ("Next", False), ("Short", False), ("Short", False)
    ]  # fmt: skip


async def test_a_late_listen_is_judged_by_the_one_after_it(client: httpx.AsyncClient) -> None:
    await log(client, "First", 0, speaker_entity=STUDY)
    await log(client, "Third", 100, speaker_entity=STUDY)
    # Arrives last (history filled in), played between them: cut short by Third, and it does not
    # make First a skip (First ran 95 s).
    await log(client, "Second", 95, speaker_entity=STUDY)
    assert await skipped(client) == {"First": False, "Second": True, "Third": False}
    # One more arrives late between First and Second: First lasted 2 s.
    await log(client, "Between", 2, speaker_entity=STUDY)
    assert await skipped(client) == {"First": True, "Between": False, "Second": True, "Third": False}


async def test_duplicates_mark_nothing_and_another_profile_goes_stale(
    client: httpx.AsyncClient, db: Factory
) -> None:
    assert (await client.post("/api/profiles", json={"name": "kid"})).status_code == 201
    await log(client, "Lullaby", 0, speaker_entity=STUDY, profile="kid")
    r = await client.post(
        "/api/history/webhook",
        json={"title": "Lullaby", "artist": "Band", "profile": "kid", "speaker_entity": STUDY,
              "played_at": (T0 + timedelta(seconds=5)).isoformat()},
    )  # fmt: skip
    assert r.json()["status"] == "duplicate"
    assert await skipped(client) == {"Lullaby": False}
    async with db() as s:
        before = (await s.execute(text("SELECT activity_at FROM profiles WHERE name = 'kid'"))).scalar_one()
    # A grown-up takes over the speaker 8 s in: the kid's listen was cut short, and the kid's
    # taste must be rebuilt though no listen of the kid's arrived.
    await log(client, "Loud", 8, speaker_entity=STUDY)
    assert await skipped(client, "kid") == {"Lullaby": True}
    async with db() as s:
        after = (await s.execute(text("SELECT activity_at FROM profiles WHERE name = 'kid'"))).scalar_one()
    assert after > before


async def test_the_rule_runs_on_the_speaker_index(db: Factory) -> None:
    # The rule's probes (previous and next listen on the speaker) must be able to use the speaker
    # index (on a table this small the planner would rather scan it, so scans are ruled out).
    async with db() as s, s.begin():
        await s.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(
            r[0]
            for r in await s.execute(
                text(
                    "EXPLAIN SELECT id FROM listen_events e "
                    "WHERE e.speaker_key = 'x' AND e.played_at <= now() "
                    "ORDER BY e.played_at DESC LIMIT 1"
                )
            )
        )
    assert "ix_listen_events_speaker_played" in plan, plan


async def test_the_migration_marks_listens_stored_before_the_rule(
    client: httpx.AsyncClient, db: Factory
) -> None:
    """Migration 0010 applies the same rule, in SQL, to the listens already stored."""
    import importlib.util
    from pathlib import Path

    import haunt_fm

    path = Path(haunt_fm.__file__).parent / "migrations" / "versions" / "0010_tastes_skips.py"
    spec = importlib.util.spec_from_file_location("migration_0010", path)
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    await log(client, "A", 0, speaker_entity=STUDY)
    await log(client, "B", 10, speaker_entity=STUDY)
    await log(client, "C", 40, speaker_entity=STUDY, duration_s=20)
    await log(client, "D", 51, speaker_entity=STUDY)
    await log(client, "E", 60, speaker_name="Porch")
    await log(client, "F", 61, speaker_entity=KITCHEN)
    await log(client, "G", 62, speaker_name="Porch")
    expected = await skipped(client)
    assert expected == {"A": True, "B": False, "C": False, "D": False, "E": True, "F": False, "G": False}
    async with db() as s, s.begin():
        await s.execute(text("UPDATE listen_events SET skipped = false"))
        await s.execute(text(migration._MARK_EXISTING_SKIPS))
    assert await skipped(client) == expected
