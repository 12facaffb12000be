"""The household's speakers under every name they go by, so "the kitchen" finds its player.

Three sources, merged by entity id and by name: the Music Assistant players Home Assistant
knows (entity id, friendly name, what is playing), the speaker mappings of the profiles, and
the speakers recent listens were reported from (the webhook sends both the name and the entity).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from haunt_fm.clients.homeassistant import HomeAssistantClient, HomeAssistantError
from haunt_fm.errors import Invalid
from haunt_fm.mcp_server import names
from haunt_fm.pipeline.listens import service as listens
from haunt_fm.pipeline.playlists import playback as player
from haunt_fm.pipeline.profiles import service as profiles


@dataclass(eq=False)
class Speaker:
    """One speaker: its name, its Music Assistant entity when known, and who listens on it."""

    name: str
    entity_id: str | None = None
    profile: str | None = None
    state: str | None = None
    media_title: str | None = None
    media_artist: str | None = None
    music_assistant: bool = False
    aliases: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    # Named by an entity id that no source knows: handed to Home Assistant as written.
    as_written: bool = False

    def add(self, alias: str | None, source: str) -> None:
        if alias and all(names.exact_key(alias) != names.exact_key(a) for a in self.aliases):
            self.aliases.append(alias)
        if source not in self.sources:
            self.sources.append(source)

    @property
    def label(self) -> str:
        return (
            f"{self.name} ({self.entity_id})" if self.entity_id and self.entity_id != self.name else self.name
        )

    @property
    def now_playing(self) -> str | None:
        if self.state != "playing" or not self.media_title:
            return None
        return f"{self.media_title} by {self.media_artist}" if self.media_artist else self.media_title


@dataclass
class SpeakerBook:
    """Every known speaker, and what Home Assistant said (None when it answered)."""

    speakers: list[Speaker]
    home_assistant_problem: str | None

    def choices(self) -> str:
        """The known speakers, and why Home Assistant's are missing when they are."""
        known = ", ".join(s.label for s in self.speakers) or "none yet"
        return known + (f" ({self.home_assistant_problem})" if self.home_assistant_problem else "")

    def resolve(self, said: str) -> Speaker:
        """The speaker `said` names; Invalid with the known speakers when none or several do."""
        try:
            found = names.pick(said, self.speakers, lambda s: s.aliases)
        except names.Ambiguous as exc:
            options = " or ".join(s.label for s in exc.matches)  # type: ignore[attr-defined]
            raise Invalid(f"'{said}' could be {options}; say which speaker.") from None
        if found is not None:
            return found
        written = said.strip().lower()
        if names.ENTITY_RE.match(written):
            return Speaker(name=written, entity_id=written, aliases=[written], as_written=True)
        raise Invalid(f"Unknown speaker '{said.strip()}'. Known speakers: {self.choices()}.")

    def find(self, alias: str) -> Speaker | None:
        key = names.exact_key(alias)
        return next((s for s in self.speakers if any(names.exact_key(a) == key for a in s.aliases)), None)


def _entity(text: str | None) -> str | None:
    return text if text and names.ENTITY_RE.match(text) else None


async def players(client: HomeAssistantClient | None) -> tuple[list[dict[str, Any]], str | None]:
    """Home Assistant's Music Assistant players, or none and why (never raises for Home Assistant)."""
    if client is None:
        return [], "Home Assistant is not configured (HAUNTFM_HA_URL, HAUNTFM_HA_TOKEN)"
    try:
        return await player.music_assistant_players(client), None
    except HomeAssistantError as exc:
        return [], player.explain(exc)


async def speaker_book(
    session: AsyncSession, *, states: list[dict[str, Any]], problem: str | None
) -> SpeakerBook:
    """Every speaker haunt-fm knows of: Home Assistant's players (`players`) first, then the
    speakers of recent listens and of the profiles' mappings."""
    book = SpeakerBook([], problem)
    for state in states:
        attributes = state.get("attributes") or {}
        entity_id = str(state["entity_id"])
        speaker = Speaker(
            name=str(attributes.get("friendly_name") or entity_id),
            entity_id=entity_id,
            state=state.get("state"),
            media_title=attributes.get("media_title"),
            media_artist=attributes.get("media_artist"),
            music_assistant=True,
        )
        speaker.add(entity_id, "home_assistant")
        speaker.add(speaker.name, "home_assistant")
        book.speakers.append(speaker)
    for heard in await listens.speakers_heard(session):
        known = next(
            (book.find(a) for a in (heard.speaker_entity, heard.speaker_name) if a and book.find(a)), None
        )
        if known is None:
            entity = _entity(heard.speaker_entity)
            known = Speaker(name=heard.speaker_name or heard.speaker_entity or "", entity_id=entity)
            book.speakers.append(known)
        elif known.entity_id is None:
            known.entity_id = _entity(heard.speaker_entity)
        known.add(heard.speaker_entity, "listens")
        known.add(heard.speaker_name, "listens")
    for profile in await profiles.list_profiles(session):
        for mapped in profile.speakers:
            known = book.find(mapped)
            if known is None:
                known = Speaker(name=mapped, entity_id=_entity(mapped))
                book.speakers.append(known)
            known.profile = profile.name
            known.add(mapped, "mapping")
    return book
