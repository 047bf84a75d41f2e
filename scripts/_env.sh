# Shared by scripts/demo and scripts/test: make .venv and install the locked dependencies.
# Idempotent: reinstalls only when pyproject.toml or requirements.lock changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "streamer needs Python 3.11 or newer as \$PYTHON (found: $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.streamer-installed"
want="$(cat pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "==> installing streamer and its locked dependencies into $VENV" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  # The distribution used to be called "streamer" (a name taken on PyPI): drop that install.
  "$VENV/bin/python" -m pip uninstall --quiet --disable-pip-version-check -y streamer \
    >/dev/null 2>&1 || true
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -c requirements.lock -e ".[dev]"
  echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
