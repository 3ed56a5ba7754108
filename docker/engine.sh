#!/bin/sh
# Makes sure a Docker engine answers, for `make docker-image` and `make docker-test` on a
# fresh Debian machine: installs Debian's docker.io, docker-compose and debootstrap when
# missing (as root, like `make browser` does for chromium) and starts dockerd in the
# background when nothing answers on the socket (no systemd needed). Its log: DOCKERD_LOG.
set -eu

log="${DOCKERD_LOG:-/tmp/dockerd.log}"
missing=""
command -v dockerd >/dev/null 2>&1 || missing="$missing docker.io"
command -v docker >/dev/null 2>&1 || missing="$missing docker.io"
docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 ||
    missing="$missing docker-compose"
command -v debootstrap >/dev/null 2>&1 || missing="$missing debootstrap"
command -v curl >/dev/null 2>&1 || missing="$missing curl"
if [ -n "$missing" ]; then
    echo "installing Debian's$missing"
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
    echo "starting dockerd (log: $log)"
    nohup dockerd >"$log" 2>&1 &
    i=0
    until docker info >/dev/null 2>&1; do
        i=$((i + 1))
        if [ "$i" -gt 60 ]; then
            echo "error: dockerd did not answer within 60 s; see $log" >&2
            tail -5 "$log" >&2
            exit 1
        fi
        sleep 1
    done
fi
