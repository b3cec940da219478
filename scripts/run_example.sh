#!/usr/bin/env bash
# Installs what is needed, builds, and runs Shoal's main job: a local three-node cluster
# (a head and two workers with different resources) that is shown with `shoal status`
# and then stopped. Uses its own temp root so it never touches another cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
exec bash examples/local_cluster.sh
