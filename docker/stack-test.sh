#!/bin/sh
# `make docker-test`: builds the images, starts the hub (cn), two centers (th, vn) and
# PostgreSQL of docker/compose.yaml, imports the sample listings at the centers, adds
# them to the hub's directory, and waits (with a deadline) until the hub's /hub/status
# shows both ok with the items it holds and /hub/dashboard answers 200. It always tears
# the stack down, volumes included, so the next run starts from nothing.
#
# Environment: SAMPLE (default ../shared/data/listings.jsonl), DEADLINE_S (default 180),
# COMPOSE_PROJECT_NAME (default cattc-test: separate from an operator's cattc project).
set -eu

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
sample="${SAMPLE:-$root/../shared/data/listings.jsonl}"
deadline_s="${DEADLINE_S:-180}"
export COMPOSE_PROJECT_NAME="${COMPOSE_PROJECT_NAME:-cattc-test}"
hub_port=8100
members="th vn"
started=$(date +%s)

say() { printf '[%4ss] %s\n' "$(($(date +%s) - started))" "$*"; }

"$here/engine.sh"
if docker compose version >/dev/null 2>&1; then
    compose() { docker compose -f "$here/compose.yaml" "$@"; }
else
    compose() { docker-compose -f "$here/compose.yaml" "$@"; }
fi
[ -f "$sample" ] || { echo "error: no sample listings at $sample (set SAMPLE)" >&2; exit 1; }

teardown() {
    status=$?
    if [ "$status" -ne 0 ]; then
        echo "--- failed; the last log lines of each container:" >&2
        compose logs --no-color --tail 30 >&2 2>&1 || true
    fi
    say "tearing down"
    compose down -v --remove-orphans >/dev/null 2>&1 || true
    exit "$status"
}
trap teardown EXIT
trap 'exit 130' INT TERM

# Poll CMD (a shell command) until it succeeds, for at most DEADLINE_S in all.
wait_for() {
    what="$1"
    shift
    until "$@" >/dev/null 2>&1; do
        if [ $(($(date +%s) - started)) -ge "$deadline_s" ]; then
            echo "error: gave up after ${deadline_s}s waiting for $what" >&2
            exit 1
        fi
        sleep 1
    done
    say "ok: $what"
}
healthy() { curl -fsS "http://127.0.0.1:$1/.well-known/cattc-node"; }

say "building the images"
"$here/build-image.sh"
say "ok: images built"
begun=$started
compose down -v --remove-orphans >/dev/null 2>&1 || true   # a stack left by a killed run
started=$(date +%s)

say "starting postgres and the hub"
compose up -d postgres cn >/dev/null 2>&1 || compose up -d postgres cn
wait_for "the hub answers on 127.0.0.1:$hub_port" healthy "$hub_port"
hub_key="$(compose exec -T cn cattc keys /data show | awk '/\(active\)/ {print $2}')"
token="$(compose exec -T cn cat /data/admin.token | tr -d '\r\n')"
[ -n "$hub_key" ] && [ -n "$token" ] || { echo "error: no hub key or admin token" >&2; exit 1; }

say "starting $members with the hub's key $hub_key"
CATTC_HUB_KEY="$hub_key" compose up -d $members >/dev/null 2>&1 ||
    CATTC_HUB_KEY="$hub_key" compose up -d $members
for m in $members; do
    port=$(compose port "$m" 8080 | sed 's/.*://')
    wait_for "$m answers on 127.0.0.1:$port" healthy "$port"
    n=$(grep -c "\"owner\": \"$m\"" "$sample")
    grep "\"owner\": \"$m\"" "$sample" | compose exec -T "$m" sh -c 'cat > /tmp/listings.jsonl'
    compose exec -T "$m" cattc import /data /tmp/listings.jsonl >/dev/null
    say "ok: $m imported $n sample listings"
    country=$(printf '%s' "$m" | tr '[:lower:]' '[:upper:]')
    compose exec -T cn cattc directory /data add "$m" --fetch --base-url "http://$m:8080" \
        --country "$country" --name "Test center $m" --group mou >/dev/null
    say "ok: the hub's directory has $m (keys fetched from http://$m:8080)"
done

# The hub pulls on its interval; `cattc sync` pulls now.
compose exec -T cn cattc sync /data now >/dev/null 2>&1 || true
synced() {
    curl -fsS -H "Authorization: Bearer $token" "http://127.0.0.1:$hub_port/hub/status" |
        python3 -c '
import json, sys
want = sys.argv[1].split()
members = {m["node_id"]: m for m in json.load(sys.stdin)["members"]}
ok = [n for n in want if members.get(n, {}).get("state") == "ok" and members[n]["items_held"] > 0]
for n in want:
    m = members.get(n, {})
    print("%s: %s, %s items held" % (n, m.get("state", "not in the directory"), m.get("items_held", 0)))
sys.exit(0 if len(ok) == len(want) else 1)' "$members"
}
wait_for "the hub's /hub/status shows $members ok with items held" synced
synced | while read -r line; do say "   $line"; done
dashboard() { curl -fsS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$hub_port/hub/dashboard" | grep -qx 200; }
wait_for "the hub's /hub/dashboard answers 200" dashboard
say "docker-test passed ($(($(date +%s) - begun)) s in all)"
