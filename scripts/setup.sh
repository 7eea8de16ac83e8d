#!/usr/bin/env bash
# Install everything sparkvision needs on a fresh Debian machine; idempotent and fast when done.
#   1. Debian packages (Java 17 with javac, Maven, Kerberos headers for gssapi, the Fashion-MNIST dataset,
#      PostgreSQL for the production-like Airflow, Chromium for the browser tests)
#   2. .venv with the pinned Python stack (requirements.lock) and exactly one pyspark 4.3.0, imported
#      from its folder even where spark-submit puts its zip first (a .pth file)
#   3. the Hadoop 3.5.0 jars from Maven Central into .cache/hadoop/lib
#   4. a JVM class-data-sharing archive for spark-submit (scripts/spark_cds.sh)
#   5. the ingest's Java classes (HDFS listing and reading) compiled into .cache/jvm
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT_DIR="$PWD"
log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

APT_PACKAGES=(openjdk-17-jdk-headless maven libkrb5-dev gcc dataset-fashion-mnist postgresql chromium)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 needed, found {sys.version}"'
LOCK_SUM="$(sha256sum requirements.lock | cut -d' ' -f1)"
STAMP=.venv/.sparkvision-lock
if [ ! -x .venv/bin/python ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$LOCK_SUM" ]; then
  log "installing the Python stack into .venv (a few minutes the first time)"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r requirements.lock
  # The Spark provider pulls pyspark-client, whose files overwrite pyspark's: put pyspark 4.3.0 back.
  .venv/bin/pip install -q --force-reinstall --no-deps "$(grep '^pyspark==' requirements.lock)"
  echo "$ROOT_DIR" > .venv/lib/python3.11/site-packages/sparkvision-dev.pth
  echo "$LOCK_SUM" > "$STAMP"
fi
# Every interpreter of the venv (the jobs' drivers, Spark's Python worker daemons and workers) imports
# pyspark from its installed folder, not from the zip that spark-submit puts first on its path: no
# compiling of pyspark's modules at every start (sparkvision/platform/pyspark_path.py).
PTH=.venv/lib/python3.11/site-packages/sparkvision-pyspark.pth
PTH_FILE="$ROOT_DIR/sparkvision/platform/pyspark_path.py"
PTH_LINE="import io, os; f = '$PTH_FILE'; h = os.path.isfile(f) and io.open_code(f); h and exec(compile(h.read(), f, 'exec'), {'__name__': '__pth__'}); h and h.close()"
[ "$(cat "$PTH" 2>/dev/null)" = "$PTH_LINE" ] || echo "$PTH_LINE" > "$PTH"
.venv/bin/python - <<'PY'
import importlib.metadata as md
import pyspark
assert pyspark.__version__ == md.version("pyspark") == "4.3.0", (pyspark.__version__, md.version("pyspark"))
import sparkvision  # noqa: F401  (the checkout is on the venv's path)
PY

if ! ls .cache/hadoop/lib/hadoop-hdfs-3.5.0.jar >/dev/null 2>&1; then
  log "fetching the Hadoop 3.5.0 jars from Maven Central"
  mvn -B -q -f hadoop/pom.xml -Dmaven.repo.local="$ROOT_DIR/.cache/m2" dependency:copy-dependencies \
    -DoutputDirectory="$ROOT_DIR/.cache/hadoop/lib" -DincludeScope=runtime
fi
bash scripts/spark_cds.sh
.venv/bin/python -m sparkvision.ingest.hadoop > /dev/null
log "ready: .venv (Python $(.venv/bin/python -c 'import platform; print(platform.python_version())')), pyspark 4.3.0, Hadoop jars in .cache/hadoop/lib"
