#!/usr/bin/env bash
# Installs Apache Flink's Python package (apache-flink 2.3.0: Flink 2.3.0 with its jars, run as a
# local mini-cluster in a JVM) into a cached virtual environment, once, and prints its python.
#
#   PY=$(scripts/flink/setup.sh)        # installs on first use (≈ 1 GB, a few minutes)
#   $PY scripts/flink/golden.py --all
#
# FLINK_VENV overrides the folder (default ~/.cache/citybrain/flink-venv). Needs python3 (3.9-3.12)
# and Java 11+ (`java` on PATH or JAVA_HOME); the scripts were run with Python 3.11 and OpenJDK 17.
set -euo pipefail
VENV=${FLINK_VENV:-$HOME/.cache/citybrain/flink-venv}
VERSION=2.3.0
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import pyflink.version as v, sys; sys.exit(v.__version__ != '$VERSION')" 2>/dev/null; then
    echo "$VENV/bin/python"
    exit 0
fi
command -v java >/dev/null || [ -n "${JAVA_HOME:-}" ] || { echo "setup.sh: Java 11+ is needed (apt-get install openjdk-17-jre-headless)" >&2; exit 1; }
echo "setup.sh: installing apache-flink==$VERSION into $VENV" >&2
python3 -m venv "$VENV" >&2
"$VENV/bin/pip" install --quiet "apache-flink==$VERSION" >&2
"$VENV/bin/python" -c "import pyflink.version as v; print('setup.sh: pyflink', v.__version__)" >&2
echo "$VENV/bin/python"
