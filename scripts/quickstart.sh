#!/usr/bin/env bash
# One command to a single-host Dandelion: installs it into a virtualenv and starts a supernode and a
# dfdaemon whose registry mirror listens on 127.0.0.1:65001 (upstream: Docker Hub unless --registry).
#
#   scripts/quickstart.sh [--registry URL] [--tls]   install (first time) and start
#   scripts/quickstart.sh status             what runs, where its logs and data are
#   scripts/quickstart.sh stop               stop both (by PID)
#
# --tls (or DANDELION_TLS=1): mutual TLS between the supernode and the dfdaemon, with a CA and certificates
# that scripts/make_certs.sh makes once in DANDELION_HOME/certs (admin.pem there is for grpcurl).
# Environment: DANDELION_HOME (default ~/.local/share/dandelion) holds venv/, data/, logs/, run/ (and certs/);
# DANDELION_PYTHON uses that interpreter (with Dandelion installed) instead of making a virtualenv;
# DANDELION_SUPERNODE_PORT (8002), DANDELION_PEER_IP (127.0.0.1), DANDELION_PEER_PORT (65000) and
# DANDELION_MIRROR (127.0.0.1:65001) move the listening addresses.
set -euo pipefail

HOME_DIR=${DANDELION_HOME:-${XDG_DATA_HOME:-$HOME/.local/share}/dandelion}
SUPERNODE_PORT=${DANDELION_SUPERNODE_PORT:-8002}
PEER_IP=${DANDELION_PEER_IP:-127.0.0.1}
PEER_PORT=${DANDELION_PEER_PORT:-65000}
MIRROR=${DANDELION_MIRROR:-127.0.0.1:65001}
REGISTRY=https://registry-1.docker.io
TLS=${DANDELION_TLS:-0}
REPO=$(cd "$(dirname "$0")/.." && pwd)
RUN=$HOME_DIR/run
LOGS=$HOME_DIR/logs

die() { echo "quickstart: $*" >&2; exit 1; }

running() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

stop() {
    for name in dfdaemon supernode; do
        if running "$name"; then
            pid=$(cat "$RUN/$name.pid")
            kill -TERM "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
            echo "stopped $name (pid $pid)"
        fi
        rm -f "$RUN/$name.pid"
    done
}

status() {
    for name in supernode dfdaemon; do
        if running "$name"; then echo "$name: running, pid $(cat "$RUN/$name.pid"), log $LOGS/$name.log"
        else echo "$name: not running"; fi
    done
    echo "data: $HOME_DIR/data"
}

case "${1:-start}" in
    stop) stop; exit 0 ;;
    status) status; exit 0 ;;
    start) shift $(( $# > 0 ? 1 : 0 )) ;;
esac
while [ $# -gt 0 ]; do
    case "$1" in
        --registry) [ $# -ge 2 ] || die "--registry needs a URL"; REGISTRY=$2; shift 2 ;;
        --tls) TLS=1; shift ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (want --registry URL, --tls, status or stop)" ;;
    esac
done
case "$TLS" in 1|true|yes|on) TLS=1 ;; 0|false|no|off|'') TLS=0 ;; *) die "DANDELION_TLS must be 1 or 0" ;; esac

mkdir -p "$RUN" "$LOGS" "$HOME_DIR/data"
if [ -n "${DANDELION_PYTHON:-}" ]; then
    PY=$DANDELION_PYTHON
else
    PY=$HOME_DIR/venv/bin/python
    if [ ! -x "$PY" ]; then
        echo "installing Dandelion into $HOME_DIR/venv ..."
        python3 -m venv "$HOME_DIR/venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
        "$PY" -m pip install -q "$REPO" || die "pip install failed"
    fi
fi
"$PY" -c 'import supernode, peer, mirror' 2>/dev/null || die "Dandelion is not installed for $PY"

for name in supernode dfdaemon; do running "$name" && die "$name already runs (pid $(cat "$RUN/$name.pid")); '$0 stop' first"; done

BIN=$(dirname "$PY")
for name in supernode dfdaemon dfget; do [ -x "$BIN/$name" ] || die "$BIN/$name is missing: is Dandelion installed for $PY?"; done

TLS_ARGS=()
if [ "$TLS" = 1 ]; then
    CERTS=$HOME_DIR/certs
    if [ ! -s "$CERTS/node.pem" ] || [ ! -s "$CERTS/admin.pem" ]; then
        bash "$REPO/scripts/make_certs.sh" "$CERTS" "node=127.0.0.1,$PEER_IP,::1,localhost" dandelion-admin >/dev/null \
            || die "making certificates in $CERTS failed"
        mv "$CERTS/dandelion-admin.pem" "$CERTS/admin.pem"
        mv "$CERTS/dandelion-admin-key.pem" "$CERTS/admin-key.pem"
    fi
    TLS_ARGS=(--tls-cert "$CERTS/node.pem" --tls-key "$CERTS/node-key.pem" --tls-ca "$CERTS/ca.pem")
fi

start() {  # name, then its arguments
    local name=$1; shift
    nohup "$BIN/$name" "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
    echo $! >"$RUN/$name.pid"
}

start supernode "${TLS_ARGS[@]}" \
    --listen "127.0.0.1:$SUPERNODE_PORT" --advertise-ip 127.0.0.1 --data-dir "$HOME_DIR/data/supernode"
"$PY" - "$SUPERNODE_PORT" "${TLS_ARGS[@]}" <<'PYEOF' || { tail -5 "$LOGS/supernode.log" >&2; stop; die "supernode did not become healthy"; }
import sys, time
from dfcommon.healthcheck import check_grpc
from dfcommon.tls import tls_config
tls = tls_config(*sys.argv[3:8:2]) if len(sys.argv) > 2 else None
deadline = time.monotonic() + 30
while (problem := check_grpc(f"127.0.0.1:{sys.argv[1]}", tls)) and time.monotonic() < deadline:
    time.sleep(0.3)
sys.exit(1 if problem else 0)
PYEOF

start dfdaemon "${TLS_ARGS[@]}" \
    --supernode "127.0.0.1:$SUPERNODE_PORT" --listen "$PEER_IP" --port "$PEER_PORT" \
    --data-dir "$HOME_DIR/data/dfdaemon" --daemon-listen "unix:$RUN/dfdaemon.sock" \
    --mirror "$MIRROR" --registry "$REGISTRY"
"$PY" - "$PEER_IP:$PEER_PORT" "$MIRROR" "${TLS_ARGS[@]}" <<'PYEOF' || { tail -5 "$LOGS/dfdaemon.log" >&2; stop; die "dfdaemon did not become healthy"; }
import socket, sys, time
from dfcommon.healthcheck import check_grpc
from dfcommon.tls import tls_config
tls = tls_config(*sys.argv[4:9:2]) if len(sys.argv) > 3 else None
deadline = time.monotonic() + 30
while (problem := check_grpc(sys.argv[1], tls)) and time.monotonic() < deadline:
    time.sleep(0.3)
host, port = sys.argv[2].rsplit(":", 1)
while not problem:  # the mirror binds its port a moment after the gRPC services are up
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            problem = f"mirror {sys.argv[2]} does not accept connections"
        time.sleep(0.3)
sys.exit(1 if problem else 0)
PYEOF

cat <<EOF
Dandelion is running: supernode 127.0.0.1:$SUPERNODE_PORT, dfdaemon $PEER_IP:$PEER_PORT, mirror http://$MIRROR -> $REGISTRY
  logs: $LOGS   data: $HOME_DIR/data   stop: $0 stop
Docker: add {"registry-mirrors": ["http://$MIRROR"]} to /etc/docker/daemon.json and restart dockerd.
Files:  $BIN/dfget URL -o FILE     (dfget finds this dfdaemon at unix:$RUN/dfdaemon.sock)
EOF
if [ "$TLS" = 1 ]; then
    cat <<EOF
Mutual TLS is on (certificates in $CERTS). Inspect with the admin certificate:
  grpcurl -cacert $CERTS/ca.pem -cert $CERTS/admin.pem -key $CERTS/admin-key.pem 127.0.0.1:$SUPERNODE_PORT list
EOF
fi
