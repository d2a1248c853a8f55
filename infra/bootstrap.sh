#!/usr/bin/env bash
# Make .venv with everything the pipeline needs (Java included). Safe to run twice:
# a stamp of the dependency files skips the pip step when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=.venv

if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info[:2] in ((3, 11), (3, 12)) else 1)'; then
  echo "bootstrap: Python 3.11 or 3.12 is required (found: $("$PY" --version 2>&1))" >&2
  exit 1
fi

# Java runs the JVM Spark engine (parity and cluster tests, benchmarks) and Maven fetches its
# Delta jars; Sail, the default engine, needs neither.
apt_pkgs=()
command -v java >/dev/null 2>&1 || apt_pkgs+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || apt_pkgs+=(maven)
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  echo "bootstrap: installing ${apt_pkgs[*]} with apt"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${apt_pkgs[@]}" >/dev/null
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"

stamp="$VENV/.installed-$(cat setup.cfg pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "bootstrap: installing Python dependencies into $VENV (first time: a few minutes)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e '.[dev]'
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi
# The Delta jars of the JVM engine (infra/delta-jars/pom.xml), from Maven Central into
# $DELTA_JARS_DIR (default .venv/delta-jars, where jobs.engine looks), once per POM version.
# Maven keeps what it downloads in ~/.m2, so a new .venv copies them without the network.
# Only what the pip pyspark's own jars folder lacks is kept (Spark, Hadoop, Parquet, Jackson,
# Scala come from pyspark: Delta is built against the same Spark).
jars=${DELTA_JARS_DIR:-$VENV/delta-jars}
jars_stamp="$jars/.pom-$(sha256sum infra/delta-jars/pom.xml | cut -c1-16)"
if [ ! -f "$jars_stamp" ]; then
  echo "bootstrap: fetching the Delta jars with Maven into $jars"
  spark_jars=$("$VENV/bin/python" -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')
  staging=$(mktemp -d)
  mvn -B -q -Dstyle.color=never -f infra/delta-jars/pom.xml dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$staging"
  rm -rf "$jars" && mkdir -p "$jars"
  for jar in "$staging"/*.jar; do
    artifact=$(basename "$jar" | sed -E 's/-[0-9][^-]*(-[0-9]+)?\.jar$//')
    compgen -G "$spark_jars/$artifact-[0-9]*.jar" >/dev/null || mv "$jar" "$jars/"
  done
  rm -rf "$staging"
  touch "$jars_stamp"
fi
echo "bootstrap: ready ($("$VENV/bin/python" --version), $(java -version 2>&1 | head -n 1), $(ls "$jars"/delta-spark_*.jar | xargs -n1 basename))"
