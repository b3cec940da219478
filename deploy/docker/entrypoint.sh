#!/usr/bin/env bash
# Entry point of the Shoal container image (deploy/Dockerfile).
#
#   IMAGE --head [shoal start flags]          a head node (GCS, raylet, dashboard)
#   IMAGE --address HEAD:6379 [flags]        a node that joins the head's cluster
#   IMAGE shoal status | bash | ...          anything not starting with "-" runs as a command
#
# For a node it adds --node-ip-address (this container's IP), --temp-dir ($SHOAL_TMPDIR) and
# --block to the given flags and runs `shoal start` in the foreground (exec: tini passes a
# SIGTERM from docker stop or a pod deletion straight to it, and `shoal start --block` stops
# the node's processes).
#
# The cluster token is not this script's business: pass the same `--auth-token-file FILE` to the
# head and to every worker, FILE being a mounted secret (Kubernetes Secret, or the compose
# file's token volume). Without it a head makes a random token of its own (fine for a single
# container; workers elsewhere then cannot know it).
#
# Environment (the SHOAL_DEPLOY_ prefix keeps these apart from the SHOAL_<FLAG> variables
# that Shoal's own flags read):
#   SHOAL_TMPDIR                      temp root for session directories (default /var/lib/shoal)
#   SHOAL_DEPLOY_NODE_IP              the address the node's servers listen on; default: the
#                                     first address `hostname -i` answers (Docker's container IP).
#                                     Kubernetes sets it from status.podIP.
#   SHOAL_DEPLOY_KEEP_SESSIONS=1      keep session directories of an earlier run of this
#                                     container in place (by default they move to previous/)
set -uo pipefail

log() { printf '[shoal-entrypoint] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

export SHOAL_TMPDIR="${SHOAL_TMPDIR:-/var/lib/shoal}"

# A command rather than flags: run it as it is.
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  exec "$@"
fi
[ $# -gt 0 ] || die "no flags: pass --head ... or --address HEAD:PORT ..."

node_ip="${SHOAL_DEPLOY_NODE_IP:-}"
if [ -z "$node_ip" ]; then
  node_ip="$(hostname -i 2>/dev/null | awk '{print $1}')"
fi
[ -n "$node_ip" ] || die "cannot tell this container's IP address; set SHOAL_DEPLOY_NODE_IP"

mkdir -p "$SHOAL_TMPDIR"
chmod 0755 "$SHOAL_TMPDIR"
# Sessions left by an earlier run of this container (a restart keeps its file system, and a
# Kubernetes emptyDir outlives a container restart): nothing of theirs runs any more. Their
# logs are kept under previous/ for one more run, out of sight of `shoal stop` and `shoal status`.
if [ "${SHOAL_DEPLOY_KEEP_SESSIONS:-0}" != "1" ] && compgen -G "$SHOAL_TMPDIR/session_*" >/dev/null; then
  rm -rf "$SHOAL_TMPDIR/previous"
  mkdir -p "$SHOAL_TMPDIR/previous"
  mv "$SHOAL_TMPDIR"/session_* "$SHOAL_TMPDIR/previous/" 2>/dev/null || true
  rm -f "$SHOAL_TMPDIR/session_latest" "$SHOAL_TMPDIR/shoal_current_cluster" "$SHOAL_TMPDIR/shoal_current_cluster_token"
fi

cmd=(shoal start "$@" --node-ip-address "$node_ip" --temp-dir "$SHOAL_TMPDIR" --block)
# The command line as logged: values of --auth-token and --redis-password masked.
shown=()
hide=0
for arg in "${cmd[@]}"; do
  if [ "$hide" = 1 ]; then shown+=("***"); hide=0; continue; fi
  case "$arg" in
    --auth-token|--redis-password) hide=1; shown+=("$arg") ;;
    --auth-token=*|--redis-password=*) shown+=("${arg%%=*}=***") ;;
    *) shown+=("$arg") ;;
  esac
done
log "running: ${shown[*]}"
exec "${cmd[@]}"
