#!/bin/sh
# Entrypoint of the CATTC node image. On the first start (no node.toml in the data
# directory) it creates the node from the CATTC_* environment with `cattc init`; then it
# runs the command it was given, by default `cattc serve /data --host 0.0.0.0 --port 8080`.
#
# Environment (the names are CATTC_ + a NodeConfig field; see node.config.known_env_vars):
#   CATTC_NODE_ID, CATTC_COUNTRY   required on the first start, e.g. vn and VN
#   CATTC_NAME, CATTC_BASE_URL, CATTC_DATABASE_URL, CATTC_HUB_URL, CATTC_HUB_KEY
#   CATTC_IS_HUB=true              this node is the CATTC hub (node id cn)
# After the first start node.toml holds these values; CATTC_* variables still override it.
# NODE_DATA_DIR (default /data) exists for tests only: the image's volume is /data.
set -eu

data_dir="${NODE_DATA_DIR:-/data}"

if [ ! -f "$data_dir/node.toml" ]; then
    if [ -e "$data_dir/signing_keys.json" ] || [ -e "$data_dir/admin.token" ]; then
        echo "error: $data_dir holds a signing key or admin token but no node.toml;" \
             "restore node.toml from your backup, or empty the volume to create a new node" >&2
        exit 1
    fi
    : "${CATTC_NODE_ID:?set CATTC_NODE_ID to the node id, e.g. vn}"
    : "${CATTC_COUNTRY:?set CATTC_COUNTRY to the ISO 3166 country code, e.g. VN}"
    hub_flag=""
    case "$(printf '%s' "${CATTC_IS_HUB:-false}" | tr '[:upper:]' '[:lower:]')" in
        true | t | yes | y | on | 1) hub_flag="--hub" ;;
    esac
    echo "creating node $CATTC_NODE_ID in $data_dir"
    if ! cattc init "$data_dir" \
        --node-id "$CATTC_NODE_ID" \
        --country "$CATTC_COUNTRY" \
        --name "${CATTC_NAME:-}" \
        --base-url "${CATTC_BASE_URL:-}" \
        --host 0.0.0.0 \
        --port 8080 \
        --database-url "${CATTC_DATABASE_URL:-}" \
        --hub-url "${CATTC_HUB_URL:-}" \
        --hub-key "${CATTC_HUB_KEY:-}" \
        ${hub_flag:+"$hub_flag"} >/dev/null; then
        # Nothing was published yet: remove the half-made node so the next start retries.
        rm -f "$data_dir/node.toml" "$data_dir/signing_keys.json" "$data_dir/admin.token"
        echo "error: 'cattc init' failed (see above); the next start will try again" >&2
        exit 1
    fi
    echo "node created; its admin token is in $data_dir/admin.token"
fi

if [ "$#" -eq 0 ]; then
    set -- cattc serve "$data_dir" --host 0.0.0.0 --port 8080
fi
exec "$@"
