#!/usr/bin/env bash
# Create .venv from the committed lock, install the project, check Java for Hail.
# Idempotent: re-running with an unchanged lock does nothing but the checks.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
LOCK="$ROOT/env/requirements.lock"
UV_VERSION=0.13.8

say() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }
can_apt() { [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; }
apt_install() {   # apt_install PACKAGE: Debian's package, quietly
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "$1" >/dev/null
}

# --- Python 3.11 -----------------------------------------------------------
PY=""
for cand in "${PYTHON:-}" python3.11 python3; do
  [ -n "$cand" ] || continue
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
    PY=$(command -v "$cand"); break
  fi
done
[ -n "$PY" ] || die "Python 3.11 is required (found: $(python3 --version 2>&1 || echo none)). Install python3.11 and python3.11-venv, or set PYTHON=/path/to/python3.11."

# --- Java for Hail (11 or 17) -----------------------------------------------
java_major() { java -version 2>&1 | sed -n 's/.*version "\([0-9]*\)\(\.[0-9]*\)*.*".*/\1/p' | head -1; }
jm=$(command -v java >/dev/null 2>&1 && java_major || true)
if [ "$jm" != "11" ] && [ "$jm" != "17" ]; then
  if can_apt; then
    say "Java 11/17 not found (found: ${jm:-none}); installing Debian's openjdk-17-jre-headless"
    apt_install openjdk-17-jre-headless
    jm=$(java_major)
    [ "$jm" = "17" ] || die "installed openjdk-17-jre-headless but 'java -version' reports ${jm:-nothing}; set JAVA_HOME to a Java 17 and put it first on PATH."
  else
    die "Hail needs Java 11 or 17 (found: ${jm:-none}). As root run: apt-get install -y openjdk-17-jre-headless   (or set JAVA_HOME and PATH to a Java 11/17)."
  fi
fi

# --- PostgreSQL server (equality tests and benchmarks; optional elsewhere) ----
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if can_apt; then
    say "PostgreSQL server not found; installing Debian's postgresql (for the equality tests)"
    apt_install postgresql
  else
    say "note: no PostgreSQL server (initdb) found; the PostgreSQL tests will be skipped. As root: apt-get install -y postgresql"
  fi
fi

# --- plink2 (the GWAS cross-check and benchmark) -----------------------------
if ! command -v plink2 >/dev/null 2>&1; then
  if can_apt; then
    say "plink2 not found; installing Debian's plink2 (the GWAS cross-check)"
    apt_install plink2
  else
    say "note: plink2 not found; the plink2 cross-check tests will be skipped. As root: apt-get install -y plink2"
  fi
fi

# --- chromium (tests/browser: JupyterLab driven by Playwright; no browser download) --
if [ ! -x /usr/bin/chromium ]; then
  if can_apt; then
    say "chromium not found; installing Debian's chromium (the JupyterLab browser tests)"
    apt_install chromium
  else
    say "note: /usr/bin/chromium not found; the browser tests (tests/browser) will be skipped. As root: apt-get install -y chromium"
  fi
fi

# --- virtualenv from the lock ---------------------------------------------
want=$(sha256sum "$LOCK" pyproject.toml | sha256sum | cut -c1-16)
stamp="$VENV/.bootstrap-stamp"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
say "creating $VENV from env/requirements.lock (first run takes a few minutes)"
[ -d "$VENV" ] || "$PY" -m venv "$VENV" || die "could not create a virtualenv; install python3.11-venv (apt-get install python3.11-venv)."
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "uv==$UV_VERSION"
"$VENV/bin/uv" pip install -q --python "$VENV/bin/python" --require-hashes -r "$LOCK"
"$VENV/bin/uv" pip install -q --python "$VENV/bin/python" --no-deps -e "$ROOT"
echo "$want" > "$stamp"
say "environment ready: $VENV (Java $jm)"
