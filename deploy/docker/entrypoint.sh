#!/usr/bin/env bash
# Entry point of the Shoal container image (deploy/Dockerfile).
#
#   IMAGE --head [shoal start flags]          a head node (GCS, raylet, dashboard)
#   IMAGE --address HEAD:6379 [flags]        a node that joins the head's cluster
#   IMAGE shoal status | bash | ...          anything not starting with "-" runs as a command
#
# For a node it adds --node-ip-address (this container's IP), --temp-dir ($SHOAL_TMPDIR) and
# --block to the given flags and keeps `shoal start` in the foreground; a SIGTERM (docker stop,
# pod deletion) is passed on, and `shoal start --block` stops the node's processes.
#
# Environment (the SHOAL_DEPLOY_ prefix keeps these apart from the SHOAL_<FLAG> variables
# that Shoal's own flags read):
#   SHOAL_TMPDIR                      temp root for session directories (default /var/lib/shoal)
#   SHOAL_DEPLOY_NODE_IP              the address the node's servers listen on; default: the
#                                     first address `hostname -i` answers (Docker's container IP).
#                                     Kubernetes sets it from status.podIP.
#   SHOAL_DEPLOY_TOKEN_EXPORT_FILE    head only: copy the cluster token the head made to this file
#                                     (a volume shared with workers and Prometheus)
#   SHOAL_DEPLOY_TOKEN_EXPORT_GID     group of that copy (mode 0640); 65534 lets the official
#                                     Prometheus image (user nobody) read it. Default 0.
#   SHOAL_DEPLOY_TOKEN_SECRET         head only, in Kubernetes: write the token into this Secret
#                                     (key "token") through the API server, with the pod's
#                                     service account
#   SHOAL_DEPLOY_TOKEN_WAIT_S         joining node: how long to wait for the file named by
#                                     --auth-token-file to appear (default 300)
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

is_head=0
token_file=""
prev=""
for arg in "$@"; do
  case "$arg" in
    --head|--head=true) is_head=1 ;;
    --auth-token-file=*) token_file="${arg#--auth-token-file=}" ;;
  esac
  if [ "$prev" = "--auth-token-file" ]; then token_file="$arg"; fi
  prev="$arg"
done

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
rm -f "$SHOAL_TMPDIR/.token-published"

# A joining node needs the head's token: wait for the file the head (or Kubernetes) fills in.
if [ "$is_head" = 0 ] && [ -n "$token_file" ]; then
  waited=0
  limit="${SHOAL_DEPLOY_TOKEN_WAIT_S:-300}"
  until [ -s "$token_file" ]; do
    [ "$waited" -ge "$limit" ] && die "no cluster token in $token_file after ${limit}s (is the head up?)"
    [ $((waited % 30)) = 0 ] && log "waiting for the cluster token in $token_file"
    sleep 1
    waited=$((waited + 1))
  done
fi

cmd=(shoal start "$@" --node-ip-address "$node_ip" --temp-dir "$SHOAL_TMPDIR" --block)

export_file="${SHOAL_DEPLOY_TOKEN_EXPORT_FILE:-}"
secret="${SHOAL_DEPLOY_TOKEN_SECRET:-}"
if [ "$is_head" = 0 ] || { [ -z "$export_file" ] && [ -z "$secret" ]; }; then
  log "running: ${cmd[*]}"
  exec "${cmd[@]}"
fi

# A head that publishes its token: `shoal start` runs as a child, so that this script can copy
# the token once the head wrote it; signals are passed on to it.
[ -n "$export_file" ] && rm -f "$export_file"
log "running: ${cmd[*]}"
"${cmd[@]}" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM INT

publish_file() {  # $1: the session's token file
  local dir tmp
  dir="$(dirname "$export_file")"
  mkdir -p "$dir"
  tmp="$(mktemp "$dir/.auth_token.XXXXXX")" || return 1
  cat "$1" >"$tmp" && chgrp "${SHOAL_DEPLOY_TOKEN_EXPORT_GID:-0}" "$tmp" && chmod 0640 "$tmp" && mv -f "$tmp" "$export_file"
}

publish_secret() {  # $1: the session's token file
  local sa=/var/run/secrets/kubernetes.io/serviceaccount ns body headers rc
  [ -r "$sa/token" ] || { log "no service account token in $sa"; return 1; }
  ns="$(cat "$sa/namespace")"
  body="$(umask 077 && mktemp)"
  headers="$(umask 077 && mktemp)"
  printf '{"data":{"token":"%s"}}' "$(base64 -w0 <"$1")" >"$body"
  # Headers from a file, so that neither token shows in the process list.
  printf 'Authorization: Bearer %s\nContent-Type: application/merge-patch+json\n' "$(cat "$sa/token")" >"$headers"
  curl --fail --silent --show-error --max-time 10 --cacert "$sa/ca.crt" -H @"$headers" -X PATCH \
    --data-binary @"$body" \
    "https://${KUBERNETES_SERVICE_HOST}:${KUBERNETES_SERVICE_PORT}/api/v1/namespaces/${ns}/secrets/${secret}" >/dev/null
  rc=$?
  rm -f "$body" "$headers"
  return $rc
}

session_token="$SHOAL_TMPDIR/session_latest/auth_token"
published=0
for _ in $(seq 1 600); do
  kill -0 "$child" 2>/dev/null || break
  if [ -s "$session_token" ]; then
    ok=1
    if [ -n "$export_file" ]; then publish_file "$session_token" || ok=0; fi
    if [ -n "$secret" ]; then publish_secret "$session_token" || ok=0; fi
    if [ "$ok" = 1 ]; then
      touch "$SHOAL_TMPDIR/.token-published"
      log "cluster token published${export_file:+ to $export_file}${secret:+ to Secret $secret}"
      published=1
      break
    fi
  fi
  sleep 1
done
[ "$published" = 1 ] || log "warning: the cluster token was not published (auth disabled, or the head did not start)"

wait "$child"
status=$?
while kill -0 "$child" 2>/dev/null; do  # woken by a signal: wait for the real end
  wait "$child"
  status=$?
done
exit "$status"
