"""Running as root changes nothing outside what haunt-fm creates."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from haunt_fm.config import Settings
from haunt_fm.db.embedded import EmbeddedDatabaseError, EmbeddedPostgres

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another user")


def test_a_parent_the_database_user_cannot_enter_is_reported_not_widened(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    server = EmbeddedPostgres(private / "haunt-fm")
    with pytest.raises(EmbeddedDatabaseError) as caught:
        server.start()
    message = str(caught.value)
    assert "embedded_postgres" in message and str(private) in message and "drwx------" in message
    assert "chmod o+x" in message and "/var/lib/haunt-fm" in message
    assert stat.S_IMODE(private.stat().st_mode) == 0o700  # untouched


def test_directories_haunt_fm_creates_are_opened_for_its_database_user(tmp_path: Path) -> None:
    data = tmp_path / "made" / "by" / "haunt-fm"
    server = EmbeddedPostgres(data)
    try:
        server.start()
        for directory in (tmp_path / "made", tmp_path / "made" / "by", data):
            assert stat.S_IMODE(directory.stat().st_mode) & 0o001, directory
        assert (data / "pg").stat().st_uid != 0  # the cluster belongs to the database user
    finally:
        server.stop()


def test_roots_default_data_dir_is_one_the_database_user_can_be_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HAUNTFM_DATA_DIR", raising=False)
    assert Settings(_env_file=None).data_dir == Path("/var/lib/haunt-fm")  # type: ignore[call-arg]
