#!/usr/bin/env bash
# Build deploy/Dockerfile for real and run what the image runs, without a Docker engine.
#
#   sudo make image-check        (or: bash scripts/image-check.sh)
#
# 1. debootstraps a Debian bookworm root with Python 3.11 and imports it as a local base
#    image (cached under build/image-check, so reruns skip it);
# 2. builds the Dockerfile FROM it with `buildah bud --isolation chroot`;
# 3. mounts the built image's root filesystem and runs the image's own ENTRYPOINT + CMD,
#    as the image's USER, in its WORKDIR, with its ENV, under chroot in fresh network, PID,
#    mount and UTS namespaces (a container without a container runtime), against a
#    PostgreSQL + pgvector on this machine (the embedded wheel's server from .venv), whose
#    socket directory is bind-mounted into the root;
# 4. checks GET /health answers 200 after the entrypoint migrated the schema, the server is
#    the container's PID 1, a POST /api/history/webhook listen is stored (201, then listed by
#    GET /api/history/recent), the image's HEALTHCHECK command passes, `alembic upgrade head`
#    works in the WORKDIR (as `docker exec` would run it) and SIGTERM stops the server
#    cleanly; then tears everything down, also on failure or Ctrl-C, and prints PASS or FAIL.
#
# Needs root, a Debian-like host (it installs buildah, debootstrap, curl and iproute2 with
# apt-get when they are missing) and `make setup` (.venv). Not part of `make test`.
#
# Settings (environment):
#   IMAGE_CHECK_DIR              cache and work directory (default: build/image-check)
#   IMAGE_CHECK_MIRROR           Debian mirror for debootstrap (default: http://deb.debian.org/debian)
#   IMAGE_CHECK_TORCH_INDEX_URL  index the build takes torch's CPU build from; by default a
#                                local index made from a torch-<ver>+cpu wheel that pip's
#                                find-links (or IMAGE_CHECK_TORCH_WHEEL) holds, else the
#                                Dockerfile's default (PyTorch's CPU index)
#   IMAGE_CHECK_STORAGE_DRIVER   buildah storage driver (default: overlay; vfs where overlay
#                                mounts are not allowed, much slower)
#   IMAGE_CHECK_KEEP=0           remove the built image at the end (the base image, the
#                                debootstrapped root and the build's layers stay cached)
set -Eeuo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${IMAGE_CHECK_DIR:-$REPO/build/image-check}"
MIRROR="${IMAGE_CHECK_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
BASE_PACKAGES="python3,python3-pip,python-is-python3,ca-certificates"
BASE_TAG="localhost/haunt-fm-base:${SUITE}-py311"
IMAGE_TAG="localhost/haunt-fm:image-check"
PY="$REPO/.venv/bin/python"
# What the container sees of the host database: its socket directory, bind-mounted here.
DB_SOCKET_IN_ROOT=/run/haunt-fm-db
STARTED=$(date +%s)

# rm -rf that never follows into a mount left behind (a killed debootstrap's /proc).
safe_rm() {
    local dir=$1 target
    [ -e "$dir" ] || return 0
    findmnt -rn -o TARGET | awk -v p="$dir/" 'index($0, p) == 1' | sort -r | while read -r target; do
        umount -l "$target" || true
    done
    rm -rf --one-file-system "$dir"
}
log() { printf '[image-check %4ss] %s\n' "$(($(date +%s) - STARTED))" "$*"; }
die() { trap - ERR; log "FAIL: $*"; exit 1; }

# A store of its own under $WORK, not the system's /var/lib/containers.
BUILDAH=(buildah --root "$WORK/storage" --runroot "$WORK/runroot"
    --storage-driver "${IMAGE_CHECK_STORAGE_DRIVER:-overlay}")

# -- teardown, also on failure -------------------------------------------------------------
CTR="" RUN_PID="" NS_PID="" PG_PID="" TMP="" RESULT=FAIL
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM ERR
    if [ -n "$NS_PID" ] && kill -0 "$NS_PID" 2>/dev/null; then
        log "teardown: stopping the container's PID 1 ($NS_PID)"
        kill -TERM "$NS_PID" 2>/dev/null
        for _ in $(seq 1 50); do kill -0 "$NS_PID" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$NS_PID" 2>/dev/null && kill -KILL "$NS_PID" 2>/dev/null
    fi
    if [ -n "$RUN_PID" ]; then
        kill -0 "$RUN_PID" 2>/dev/null && kill -KILL "$RUN_PID" 2>/dev/null
        wait "$RUN_PID" 2>/dev/null
    fi
    if [ -n "$CTR" ]; then
        log "teardown: unmounting and removing the working container $CTR"
        "${BUILDAH[@]}" umount "$CTR" >/dev/null 2>&1
        "${BUILDAH[@]}" rm "$CTR" >/dev/null 2>&1
    fi
    if [ -n "$PG_PID" ]; then
        log "teardown: stopping PostgreSQL"
        kill -TERM "$PG_PID" 2>/dev/null
        wait "$PG_PID" 2>/dev/null
    fi
    if [ -n "$TMP" ]; then
        # A server left behind by a killed owner: stop it by its own pid file.
        local pidfile="$TMP/db/pg/postmaster.pid"
        if [ -f "$pidfile" ]; then
            local pgpid
            pgpid=$(head -n1 "$pidfile")
            if [ -n "$pgpid" ] && grep -qs "$TMP/db/pg" "/proc/$pgpid/cmdline"; then
                kill -TERM "$pgpid" 2>/dev/null
                sleep 2
            fi
        fi
        safe_rm "$TMP"
    fi
    if [ "${IMAGE_CHECK_KEEP:-1}" = 0 ]; then
        "${BUILDAH[@]}" rmi "$IMAGE_TAG" >/dev/null 2>&1
    fi
    if [ "$RESULT" = PASS ] && [ "$rc" = 0 ]; then
        log "PASS: the image builds, migrates, serves /health and stores a webhook listen"
    else
        log "FAIL (exit $rc); server log: $WORK/last-run/server.log"
        [ "$rc" = 0 ] && rc=1
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "error: line $LINENO: $BASH_COMMAND"' ERR
trap 'exit 130' INT TERM

# -- 0. tools ------------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot and namespaces need it)"
[ -x "$PY" ] || die "$PY is missing: run \`make setup\` first (the host database comes from .venv)"
mkdir -p "$WORK" "$WORK/last-run"
missing=()
for tool in buildah:buildah debootstrap:debootstrap curl:curl ip:iproute2 unshare:util-linux nsenter:util-linux; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
    log "installing from Debian: ${missing[*]}"
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; } \
        >"$WORK/apt.log" 2>&1 || { tail -n 20 "$WORK/apt.log"; die "apt-get install ${missing[*]} failed"; }
fi
log "tools: $(buildah --version), debootstrap $(dpkg-query -W -f='${Version}' debootstrap 2>/dev/null || echo '?')"

# -- 1. the base image: Debian bookworm + Python 3.11 ----------------------------------------
ROOTFS="$WORK/base/rootfs"
STAMP="$WORK/base/stamp"
want_stamp="$SUITE $MIRROR $BASE_PACKAGES"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want_stamp" ]; then
    log "debootstrap $SUITE (minbase + $BASE_PACKAGES) from $MIRROR into $ROOTFS"
    safe_rm "$WORK/base"
    mkdir -p "$WORK/base"
    debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$ROOTFS.tmp" "$MIRROR" \
        >"$WORK/base/debootstrap.log" 2>&1 || {
        tail -n 20 "$WORK/base/debootstrap.log"
        die "debootstrap failed (log: $WORK/base/debootstrap.log)"
    }
    if findmnt -rn -o TARGET | grep -q "^$ROOTFS.tmp/"; then
        die "debootstrap left mounts under $ROOTFS.tmp"
    fi
    # Like python:3.11-slim: pip installs into the image's Python (PEP 668 lets a container
    # image drop the marker), and the image carries no device nodes or package lists.
    rm -f "$ROOTFS.tmp"/usr/lib/python3*/EXTERNALLY-MANAGED
    rm -rf "$ROOTFS.tmp"/dev/* "$ROOTFS.tmp"/var/lib/apt/lists/* "$ROOTFS.tmp"/var/cache/apt/*.bin
    mv "$ROOTFS.tmp" "$ROOTFS"
    echo "$want_stamp" >"$STAMP"
    "${BUILDAH[@]}" rmi -f "$BASE_TAG" >/dev/null 2>&1 || true
else
    log "debootstrapped root cached: $ROOTFS"
fi

# This machine's own certificate authorities (e.g. a TLS-inspecting proxy in front of PyPI)
# go into the local base only, so that pip inside the build trusts what pip here trusts.
extra_cas=()
for crt in /usr/local/share/ca-certificates/*.crt; do
    [ -f "$crt" ] && extra_cas+=("$crt")
done
ca_sum=$(cat "${extra_cas[@]}" /dev/null | sha256sum | cut -c1-12)
base_label=$(sha256sum <<<"$want_stamp $ca_sum" | cut -c1-12)
have_label=$("${BUILDAH[@]}" inspect --type image --format '{{index .ImageAnnotations "org.haunt-fm.image-check"}}' \
    "$BASE_TAG" 2>/dev/null || true)
if [ "$have_label" != "$base_label" ]; then
    log "importing the root as base image $BASE_TAG (${#extra_cas[@]} local CA certificate(s) added)"
    "${BUILDAH[@]}" rmi -f "$BASE_TAG" >/dev/null 2>&1 || true
    base_ctr=$("${BUILDAH[@]}" from scratch)
    base_mnt=$("${BUILDAH[@]}" mount "$base_ctr")
    cp -a "$ROOTFS/." "$base_mnt/"
    if [ "${#extra_cas[@]}" -gt 0 ]; then
        cp "${extra_cas[@]}" "$base_mnt/usr/local/share/ca-certificates/"
        chroot "$base_mnt" update-ca-certificates >/dev/null 2>&1 || die "update-ca-certificates failed in the base"
    fi
    "${BUILDAH[@]}" umount "$base_ctr" >/dev/null
    "${BUILDAH[@]}" config \
        --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env LANG=C.UTF-8 \
        --env PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
        --annotation "org.haunt-fm.image-check=$base_label" \
        --cmd python3 "$base_ctr"
    "${BUILDAH[@]}" commit --quiet --rm "$base_ctr" "$BASE_TAG" >/dev/null
else
    log "base image cached: $BASE_TAG"
fi
probe=$("${BUILDAH[@]}" from --pull=never "$BASE_TAG")
log "base: $("${BUILDAH[@]}" run --isolation chroot "$probe" sh -c 'python --version; pip --version' 2>&1 | tr '\n' ' ')"
"${BUILDAH[@]}" rm "$probe" >/dev/null

# -- 2. where the build takes torch from --------------------------------------------------
torch_pin=$(grep -o '"torch==[0-9.]*"' "$REPO/deploy/Dockerfile" | tr -d '"' | head -n1)
[ -n "$torch_pin" ] || die "no torch==<version> pin in deploy/Dockerfile"
torch_version=${torch_pin#torch==}
build_args=(--build-arg "BASE_IMAGE=$BASE_TAG")
volumes=()
if [ -n "${IMAGE_CHECK_TORCH_INDEX_URL:-}" ]; then
    build_args+=(--build-arg "TORCH_INDEX_URL=$IMAGE_CHECK_TORCH_INDEX_URL")
    log "torch: $torch_pin from $IMAGE_CHECK_TORCH_INDEX_URL"
else
    wheel="${IMAGE_CHECK_TORCH_WHEEL:-}"
    if [ -z "$wheel" ]; then
        links="${PIP_FIND_LINKS:-} $("$PY" -m pip config get global.find-links 2>/dev/null || true)"
        for dir in $links; do
            dir=${dir#file://}
            for candidate in "$dir"/torch-"$torch_version"+cpu-cp311-cp311-*linux*_x86_64.whl; do
                [ -f "$candidate" ] && wheel=$candidate && break 2
            done
        done
    fi
    if [ -n "$wheel" ]; then
        index="$WORK/torch-index"
        if [ ! -f "$index/stamp" ] || [ "$(cat "$index/stamp")" != "$wheel" ]; then
            log "torch: local index from $wheel plus its dependencies (pip download)"
            rm -rf "$index"
            mkdir -p "$index/files"
            "$PY" -m pip download --only-binary=:all: --dest "$index/files" "$wheel" \
                >"$WORK/last-run/torch-index.log" 2>&1 \
                || die "pip download of torch's dependencies failed (log: $WORK/last-run/torch-index.log)"
            indexed=$("$PY" - "$index" <<'PYEOF'
"""A PEP 503 simple index over the downloaded wheels, for `pip install --index-url file://`."""
import html, re, sys
from pathlib import Path

root = Path(sys.argv[1])
projects: dict[str, list[str]] = {}
for wheel in sorted((root / "files").glob("*.whl")):
    name = re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()
    projects.setdefault(name, []).append(wheel.name)
for name, files in projects.items():
    page = root / "simple" / name / "index.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    links = "".join(f'<a href="../../files/{html.escape(f)}">{html.escape(f)}</a><br>\n' for f in files)
    page.write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")
print(f"{len(projects)} projects indexed: {' '.join(sorted(projects))}")
PYEOF
            )
            log "torch: $indexed"
            echo "$wheel" >"$index/stamp"
        else
            log "torch: local index cached ($wheel)"
        fi
        volumes+=(-v "$index:/torch-index:ro")
        build_args+=(--build-arg "TORCH_INDEX_URL=file:///torch-index/simple")
    else
        log "torch: no local $torch_version+cpu wheel; the build uses the Dockerfile's default index"
    fi
fi

# -- 3. build -------------------------------------------------------------------------------
log "building deploy/Dockerfile FROM $BASE_TAG (buildah bud --isolation chroot; log: $WORK/last-run/build.log)"
build_started=$(date +%s)
if ! "${BUILDAH[@]}" bud --isolation chroot --layers --pull=never --format docker \
    -f "$REPO/deploy/Dockerfile" --ignorefile "$REPO/deploy/Dockerfile.dockerignore" \
    "${build_args[@]}" "${volumes[@]}" -t "$IMAGE_TAG" "$REPO" >"$WORK/last-run/build.log" 2>&1; then
    tail -n 40 "$WORK/last-run/build.log"
    die "the image did not build"
fi
grep -E '^STEP [0-9]+/[0-9]+' "$WORK/last-run/build.log" | sed 's/^/    /'
log "built $IMAGE_TAG in $(($(date +%s) - build_started)) s, $("${BUILDAH[@]}" images --format '{{.Size}}' "$IMAGE_TAG")"

# -- 4. what the image says to run ----------------------------------------------------------
"${BUILDAH[@]}" inspect --type image "$IMAGE_TAG" >"$WORK/last-run/inspect.json"
"${BUILDAH[@]}" rm haunt-fm-image-check >/dev/null 2>&1 || true  # left by a killed run
CTR=$("${BUILDAH[@]}" from --pull=never --name haunt-fm-image-check "$IMAGE_TAG")
ROOT=$("${BUILDAH[@]}" mount "$CTR")
log "mounted the image's root at $ROOT"

TMP=$(mktemp -d /tmp/haunt-fm-image-check.XXXXXX)
mkdir -p "$TMP/db"
log "starting PostgreSQL + pgvector (embedded wheel, data in $TMP/db)"
"$PY" - "$TMP/db" "$TMP/db-ready" >"$WORK/last-run/postgres.out" 2>&1 <<'PYEOF' &
import signal, sys
from pathlib import Path

from haunt_fm.db.embedded import EmbeddedPostgres

db = EmbeddedPostgres(Path(sys.argv[1]))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
try:
    db.start()
    Path(sys.argv[2]).write_text(f"{db.paths.socket_dir}\n{db.port}\n")
    signal.pause()
finally:
    db.stop()
PYEOF
PG_PID=$!
for _ in $(seq 1 300); do
    [ -s "$TMP/db-ready" ] && break
    kill -0 "$PG_PID" 2>/dev/null || { cat "$WORK/last-run/postgres.out"; die "PostgreSQL did not start"; }
    sleep 0.2
done
[ -s "$TMP/db-ready" ] || die "PostgreSQL did not start within 60 s"
db_socket_dir=$(sed -n 1p "$TMP/db-ready")
db_port=$(sed -n 2p "$TMP/db-ready")
DATABASE_URL="postgresql://postgres@/haunt_fm?host=$DB_SOCKET_IN_ROOT&port=$db_port"
log "PostgreSQL up: socket $db_socket_dir/.s.PGSQL.$db_port, seen in the root as $DB_SOCKET_IN_ROOT"

# The container's environment: the image's ENV, HOME from its USER (as Docker does), the
# database, and no background work that would reach outside (there is no network anyway).
"$PY" - "$WORK/last-run/inspect.json" "$ROOT" "$TMP" <<'PYEOF'
import json, shlex, sys
from pathlib import Path

config = json.loads(Path(sys.argv[1]).read_text())["Docker"]["config"]
root, tmp = Path(sys.argv[2]), Path(sys.argv[3])
user = config.get("User") or "root"
name, _, group = user.partition(":")
passwd = [line.split(":") for line in (root / "etc/passwd").read_text().splitlines() if line]
entry = next((p for p in passwd if p[0] == name or p[2] == name), None)
if entry is None and not name.isdigit():
    sys.exit(f"the image's USER {name!r} is not in its /etc/passwd")
uid = entry[2] if entry else name
gid = group or (entry[3] if entry else "0")
home = entry[5] if entry else "/"
env = dict(item.partition("=")[::2] for item in config.get("Env") or [])
env.setdefault("HOME", home)
env.setdefault("HOSTNAME", "haunt-fm")
argv = (config.get("Entrypoint") or []) + (config.get("Cmd") or [])
ports = sorted(int(p.split("/")[0]) for p in (config.get("ExposedPorts") or {}))
health = (config.get("Healthcheck") or {}).get("Test") or []
out = {
    "USERSPEC": f"{uid}:{gid}",
    "WORKDIR": config.get("WorkingDir") or "/",
    "PORT": str(ports[0]) if ports else "",
    "ARGV": shlex.join(argv),
    "HEALTH": shlex.join(health[1:]) if health[:1] == ["CMD"] else "",
    "USER_NAME": user,
}
(tmp / "run.env").write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in out.items()))
(tmp / "container.env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
PYEOF
# shellcheck disable=SC1091
. "$TMP/run.env"
{
    echo "HAUNTFM_DATABASE_URL=$DATABASE_URL"
    echo "HAUNTFM_EMBEDDING_WORKER_ENABLED=false"
    echo "HAUNTFM_PREVIEW_WORKER_ENABLED=false"
} >>"$TMP/container.env"
[ -n "$PORT" ] || die "the image exposes no port"
log "image config: USER $USER_NAME ($USERSPEC), WORKDIR $WORKDIR, EXPOSE $PORT"
log "image command: $ARGV"
log "container env: $(cut -d= -f1 "$TMP/container.env" | tr '\n' ' ')"

# -- 5. run it: chroot in fresh namespaces ---------------------------------------------------
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$TMP/hosts"
echo haunt-fm >"$TMP/hostname"
cat >"$TMP/container.sh" <<'SH'
# PID 1 of the new namespaces until it execs the image's command.
set -euo pipefail
root=$1 tmp=$2 sock=$3 sock_in_root=$4 userspec=$5 workdir=$6
shift 6
ip link set lo up
hostname haunt-fm
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys" 2>/dev/null || mount --rbind -o ro /sys "$root/sys"
# /dev as a container gets it: a tmpfs with the usual nodes, not the host's /dev.
mount -t tmpfs -o nosuid,mode=0755 tmpfs "$root/dev"
for node in null zero full random urandom tty; do
    touch "$root/dev/$node"
    mount --bind "/dev/$node" "$root/dev/$node"
done
mkdir -p "$root/dev/shm" "$root/dev/pts"
mount -t tmpfs -o nosuid,nodev,mode=1777 shm "$root/dev/shm"
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
for f in hosts hostname; do
    [ -e "$root/etc/$f" ] || touch "$root/etc/$f"
    mount --bind "$tmp/$f" "$root/etc/$f"
done
mkdir -p "$root$sock_in_root"
mount --bind "$sock" "$root$sock_in_root"
# The image's ENV only, then its ENTRYPOINT + CMD as its USER in its WORKDIR.
mapfile -t envs <"$tmp/container.env"
exec chroot --userspec="$userspec" --groups="${userspec#*:}" "$root" \
    /usr/bin/env -i -C "$workdir" "${envs[@]}" "$@"
SH
eval "argv=($ARGV)"
log "starting the container: unshare --net --pid --mount --uts, chroot $ROOT"
unshare --net --pid --mount --uts --fork --kill-child \
    bash "$TMP/container.sh" "$ROOT" "$TMP" "$db_socket_dir" "$DB_SOCKET_IN_ROOT" "$USERSPEC" "$WORKDIR" \
    "${argv[@]}" >"$WORK/last-run/server.log" 2>&1 &
RUN_PID=$!
for _ in $(seq 1 50); do
    NS_PID=$(awk '{print $1}' "/proc/$RUN_PID/task/$RUN_PID/children" 2>/dev/null || true)
    [ -n "$NS_PID" ] && break
    kill -0 "$RUN_PID" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$NS_PID" ]; then
    wait "$RUN_PID" && rc=0 || rc=$?
    RUN_PID=""
    tail -n 20 "$WORK/last-run/server.log"
    die "the container exited at once (exit $rc)"
fi
in_ns() { nsenter --target "$NS_PID" --net -- "$@"; }
base_url="http://127.0.0.1:$PORT"

# -- 6. checks ----------------------------------------------------------------------------
started=$(date +%s)
health_code=""
while [ $(($(date +%s) - started)) -lt 240 ]; do
    if ! kill -0 "$NS_PID" 2>/dev/null; then
        wait "$RUN_PID" && rc=0 || rc=$?
        RUN_PID="" NS_PID=""
        tail -n 40 "$WORK/last-run/server.log"
        die "the container exited (exit $rc) before /health answered"
    fi
    health_code=$(in_ns curl -s -o "$TMP/health.json" -w '%{http_code}' --max-time 5 "$base_url/health" || true)
    [ "$health_code" = 200 ] && break
    sleep 0.5
done
[ "$health_code" = 200 ] || { tail -n 40 "$WORK/last-run/server.log"; die "GET /health never answered 200 (last: ${health_code:-none})"; }
log "GET $base_url/health -> $health_code $(cat "$TMP/health.json") after $(($(date +%s) - started)) s"
grep -q "database schema is up to date" "$WORK/last-run/server.log" \
    || die "the entrypoint did not report the migrations"
log "entrypoint: $(grep -m1 'database schema is up to date' "$WORK/last-run/server.log")"
pid1=$(tr '\0' ' ' <"/proc/$NS_PID/cmdline")
case "$pid1" in
    *haunt-fm\ serve*) log "the container's PID 1 is the server (exec): $pid1" ;;
    *) die "the container's PID 1 is not the server: $pid1" ;;
esac

title="Image check $(date -u +%Y%m%dT%H%M%SZ)-$$"
body=$("$PY" -c 'import json, sys; print(json.dumps({"title": sys.argv[1], "artist": "haunt-fm image check", "album": "Build", "speaker_name": "Chroot speaker"}))' "$title")
code=$(in_ns curl -s -o "$TMP/webhook.json" -w '%{http_code}' --max-time 10 \
    -H 'Content-Type: application/json' -d "$body" "$base_url/api/history/webhook" || true)
log "POST $base_url/api/history/webhook {\"title\": \"$title\", ...} -> $code $(cat "$TMP/webhook.json" 2>/dev/null)"
[ "$code" = 201 ] || die "the webhook answered $code, not 201"
code=$(in_ns curl -s -o "$TMP/recent.json" -w '%{http_code}' --max-time 10 "$base_url/api/history/recent?limit=5" || true)
[ "$code" = 200 ] || die "GET /api/history/recent answered $code"
"$PY" - "$TMP/webhook.json" "$TMP/recent.json" "$title" <<'PYEOF' || die "the listen is not in /api/history/recent"
import json, sys
from pathlib import Path

logged = json.loads(Path(sys.argv[1]).read_text())
recent = json.loads(Path(sys.argv[2]).read_text())["events"]
match = [e for e in recent if e["event_id"] == logged["event_id"]]
assert logged["status"] == "logged", logged
assert match and match[0]["title"] == sys.argv[3] and match[0]["track_id"] == logged["track_id"], recent
e = match[0]
print(f"  GET /api/history/recent -> 200, event {e['event_id']}: {e['artist']} - {e['title']} "
      f"(profile {e['profile']}, speaker {e['speaker_name']}, played_at {e['played_at']})")
PYEOF

# `docker exec`: a command as the image's USER, in its WORKDIR and ENV, inside the container.
exec_in() {
    local envs
    mapfile -t envs <"$TMP/container.env"
    nsenter --target "$NS_PID" --net --mount --pid --uts -- chroot --userspec="$USERSPEC" \
        --groups="${USERSPEC#*:}" "$ROOT" /usr/bin/env -i -C "$WORKDIR" "${envs[@]}" "$@"
}
[ -n "$HEALTH" ] || die "the image has no HEALTHCHECK"
eval "health_argv=($HEALTH)"
exec_in "${health_argv[@]}" || die "the image's HEALTHCHECK command failed"
log "HEALTHCHECK ${health_argv[*]:0:2} '...urlopen(http://localhost:$PORT/health)...' -> exit 0"
exec_in alembic upgrade head >"$TMP/alembic.out" 2>&1 || { cat "$TMP/alembic.out"; die "alembic upgrade head failed in $WORKDIR"; }
current=$(exec_in alembic current 2>/dev/null | tail -n1)
case "$current" in
    *"(head)"*) log "docker exec ... alembic upgrade head; alembic current -> $current" ;;
    *) die "alembic current in $WORKDIR says '$current', not head" ;;
esac

log "stopping the container with SIGTERM (as docker stop does)"
kill -TERM "$NS_PID"
stop_rc=0
wait "$RUN_PID" || stop_rc=$?
RUN_PID="" NS_PID=""
grep -q "Application shutdown complete" "$WORK/last-run/server.log" || die "the server did not shut down cleanly (exit $stop_rc)"
log "server stopped: exit $stop_rc, 'Application shutdown complete'"
sed 's/^/    | /' "$WORK/last-run/server.log" | tail -n 30
RESULT=PASS
