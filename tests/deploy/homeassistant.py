"""A small stand-in for the parts of Home Assistant that run deploy/homeassistant/haunt_fm.yaml.

Home Assistant templates are Jinja2 in an immutable sandbox; the helpers below behave like
HA's own (`now()` is timezone-aware local time, `state_attr` answers None for a missing
attribute, `int` is forgiving only with a default, `tojson` keeps non-ASCII characters).
State triggers follow HA's rules: a `to:` trigger fires when the state changes to that
value, an `attribute:` trigger when that attribute's value changes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jinja2.filters
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

REPO = Path(__file__).resolve().parents[2]
HA_DIR = REPO / "deploy" / "homeassistant"
PACKAGE = HA_DIR / "haunt_fm.yaml"
SECRETS_EXAMPLE = HA_DIR / "secrets.example.yaml"
# Home Assistant's clock runs in the house's time zone, not UTC.
HOUSE_TZ = timezone(timedelta(hours=-5), "EST")

_NO_DEFAULT = object()


def load_package(secrets: dict[str, str]) -> dict[str, Any]:
    """Parse the package YAML the way HA does, resolving `!secret` from `secrets`."""

    class Loader(yaml.SafeLoader):
        pass

    def _secret(loader: yaml.SafeLoader, node: yaml.Node) -> str:
        name = loader.construct_scalar(node)  # type: ignore[arg-type]
        if name not in secrets:
            raise KeyError(f"secret {name!r} is used by the package but missing from secrets")
        return secrets[name]

    Loader.add_constructor("!secret", _secret)
    return yaml.load(PACKAGE.read_text(encoding="utf-8"), Loader=Loader)


def example_secrets() -> dict[str, str]:
    return yaml.safe_load(SECRETS_EXAMPLE.read_text(encoding="utf-8"))


def _forgiving_int(value: Any, default: Any = _NO_DEFAULT, base: int = 10) -> Any:
    result = jinja2.filters.do_int(value, default=_NO_DEFAULT, base=base)  # type: ignore[arg-type]
    if result is _NO_DEFAULT:
        if default is _NO_DEFAULT:
            raise ValueError(f"Template error: int got invalid input {value!r} when rendering and no default")
        return default
    return result


def _tojson(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


@dataclass
class House:
    """Current entity states (entity_id -> state object as HA's REST API shows it)."""

    states: dict[str, dict[str, Any]]

    def environment(self) -> ImmutableSandboxedEnvironment:
        env = ImmutableSandboxedEnvironment()
        env.globals["now"] = lambda: datetime.now(HOUSE_TZ)
        env.globals["state_attr"] = self.state_attr
        env.filters["int"] = _forgiving_int
        env.filters["tojson"] = _tojson
        return env

    def state_attr(self, entity_id: str, name: str) -> Any:
        state = self.states.get(entity_id)
        return None if state is None else state["attributes"].get(name)

    def render(self, template: str, variables: dict[str, Any]) -> str:
        return self.environment().from_string(template).render(**variables).strip()

    def render_data(self, data: dict[str, str], variables: dict[str, Any]) -> dict[str, Any]:
        """Service data as the automation sends it (every value here renders to a string)."""
        return {key: self.render(value, variables) for key, value in data.items()}


def fired_triggers(
    triggers: list[dict[str, Any]], old: dict[str, Any], new: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """The `trigger` variables HA builds for one state change, for each state trigger that fires."""
    for index, trig in enumerate(triggers):
        assert trig.get("platform", trig.get("trigger")) == "state", trig
        if new["entity_id"] not in trig["entity_id"]:
            continue
        attribute = trig.get("attribute")
        if attribute is None:
            before, after = old["state"], new["state"]
        else:
            before, after = old["attributes"].get(attribute), new["attributes"].get(attribute)
        if before == after:
            continue
        if "to" in trig and after != trig["to"]:
            continue
        if "from" in trig and before != trig["from"]:
            continue
        yield {
            "platform": "state",
            "id": trig.get("id", str(index)),
            "idx": str(index),
            "entity_id": new["entity_id"],
            "attribute": attribute,
            "from_state": old,
            "to_state": new,
            "for": None,
        }


def condition_passes(house: House, conditions: list[dict[str, Any]], trigger: dict[str, Any]) -> bool:
    results = []
    for cond in conditions:
        assert cond["condition"] == "template", cond
        results.append(house.render(cond["value_template"], {"trigger": trigger}) == "True")
    return all(results)
