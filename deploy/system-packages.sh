#!/usr/bin/env bash
# Install the Debian packages Sharelock's embedded setup needs, only when they are missing.
# Usage: deploy/system-packages.sh [--with-browser]   (the test tools: browser, HAProxy,
#        redis-sentinel, PostgreSQL's initdb)
set -euo pipefail

need=()
command -v softhsm2-util >/dev/null 2>&1 || need+=(softhsm2)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v python3 >/dev/null 2>&1 || need+=(python3)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
# identity verification (sharelock.identity): Tesseract reads documents' machine-readable zones
command -v tesseract >/dev/null 2>&1 || need+=(tesseract-ocr)
[[ -f /usr/share/tesseract-ocr/5/tessdata/eng.traineddata ]] || need+=(tesseract-ocr-eng)
if [[ "${1:-}" == "--with-browser" ]]; then
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  # npm (and Node.js with it): axe-core for the accessibility checks, oauth4webapi for the
  # interop test (tests/interop/)
  command -v npm >/dev/null 2>&1 || need+=(npm)
  # deploy/redis/sentinel.conf, run by tests/integration/test_redis_ha.py
  [[ -x /usr/bin/redis-sentinel ]] || need+=(redis-sentinel)
  # deploy/haproxy/haproxy.cfg, run by tests/integration/test_haproxy_config.py
  { command -v haproxy || [[ -x /usr/sbin/haproxy ]]; } >/dev/null 2>&1 || need+=(haproxy)
  # initdb for the private PostgreSQL of tests/support/postgres_server.py and the cluster run
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
  # OCR-B, the machine-readable zones' typeface, for the specimen documents of tests/identity/
  [[ -f /usr/share/fonts/opentype/ocr-b/OCRB.otf ]] || need+=(fonts-ocr-b)
fi

[[ ${#need[@]} -eq 0 ]] && exit 0

echo "sharelock: installing Debian packages: ${need[*]}"
if [[ $(id -u) -eq 0 ]]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  echo "sharelock: please install as root: apt-get install ${need[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
