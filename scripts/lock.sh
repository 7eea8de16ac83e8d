#!/usr/bin/env bash
# Regenerate requirements.lock from a clean install of requirements.txt in a throw-away venv.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3.11 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --upgrade pip
"$tmp/venv/bin/pip" install -q -r requirements.txt
{
  echo "# Every package of a clean install of requirements.txt (Python 3.11, Linux x86_64), pinned."
  echo "# Regenerate: make lock (a fresh venv, pip install -r requirements.txt, pip freeze)."
  "$tmp/venv/bin/pip" freeze --exclude-editable
} > requirements.lock
echo "requirements.lock: $(grep -vc '^#' requirements.lock) packages"
