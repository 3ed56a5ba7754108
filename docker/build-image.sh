#!/bin/sh
# Builds the node image (cattc-node:local) and the PostgreSQL image (cattc-postgres:local)
# with no registry image and no network inside the build: the base image comes from
# Debian packages (docker/base-image.sh), the wheels from the host's pip (with its own
# index, proxy and CA settings) into build/docker-context, the context of docker/Dockerfile.
#
# Usage: docker/build-image.sh            (from the repository root; PIP defaults to .venv/bin/pip)
set -eu

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
pip="${PIP:-$root/.venv/bin/pip}"
base="${BASE_IMAGE:-cattc-base:bookworm}"
ctx="$root/build/docker-context"

"$here/engine.sh"
"$here/base-image.sh" "$base"

# Wheels: the dependencies (kept between runs, so an unchanged set is not rebuilt and the
# image layer that installs them stays cached) and the project's own wheel (made anew).
mkdir -p "$ctx/wheels/deps" "$ctx/wheels/project"
rm -f "$ctx"/wheels/project/*.whl
"$pip" wheel -q --disable-pip-version-check -w "$ctx/wheels/project" --no-deps "$root" \
    >"$ctx/pip.log" 2>&1 || { cat "$ctx/pip.log" >&2; exit 1; }
project="$(ls "$ctx"/wheels/project/*.whl)"
"$pip" wheel -q --disable-pip-version-check -w "$ctx/wheels/deps" "$project[postgres]" \
    >"$ctx/pip.log" 2>&1 || { cat "$ctx/pip.log" >&2; exit 1; }
rm -f "$ctx"/wheels/deps/cattc_federation-*.whl "$ctx/pip.log"
# Only the wheels the current dependencies need: an old version left here would
# change the layer (and be installed next to the new one).
"$pip" install -q --disable-pip-version-check --dry-run --ignore-installed --no-index \
    --find-links "$ctx/wheels/deps" --report "$ctx/report.json" "$project[postgres]" >/dev/null
python3 - "$ctx" <<'PY'
import json, pathlib, sys
ctx = pathlib.Path(sys.argv[1])
wanted = {pathlib.PurePosixPath(i["download_info"]["url"]).name
          for i in json.loads((ctx / "report.json").read_text())["install"]}
for whl in (ctx / "wheels" / "deps").glob("*.whl"):
    if whl.name not in wanted:
        whl.unlink()
(ctx / "report.json").unlink()
PY
cp "$here/entrypoint.sh" "$here/postgres-entrypoint.sh" "$ctx/"

# The legacy builder (docker-compose v1 and a client without buildx use it) takes this
# small context as it is; --network none: the build reaches nothing.
export DOCKER_BUILDKIT=0
for name in node postgres; do
    dockerfile="$here/Dockerfile"
    [ "$name" = node ] || dockerfile="$here/Dockerfile.$name"
    docker build --network none --build-arg BASE_IMAGE="$base" -f "$dockerfile" \
        -t "cattc-$name:local" "$ctx" >"$ctx/build.log" 2>&1 ||
        { tail -40 "$ctx/build.log" >&2; exit 1; }
done
rm -f "$ctx/build.log"
echo "images: cattc-node:local cattc-postgres:local (base $base)"
