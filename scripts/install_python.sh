#!/usr/bin/env bash
# Makes `import shoal` work for this Python interpreter without PYTHONPATH: adds build/python
# (where the build puts the package) to site-packages through a .pth file. Build first.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -f build/python/shoal/__init__.py ]; then
  echo "error: build/python/shoal is missing; run bash scripts/build.sh first" >&2
  exit 1
fi
SITE=$("$PYTHON" -c 'import site; print(site.getsitepackages()[0])')
echo "$PWD/build/python" > "$SITE/shoal.pth"
echo "installed: $SITE/shoal.pth -> $PWD/build/python"
"$PYTHON" -c 'import shoal; print("import shoal OK, version", shoal.__version__)'
