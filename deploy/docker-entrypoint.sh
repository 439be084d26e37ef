#!/bin/sh
# Container entrypoint: settings that are secrets but that Sharelock reads from the environment
# (SHARELOCK_DATABASE_URL, SHARELOCK_REDIS_PASSWORD) arrive as files, Compose `secrets:` or
# Kubernetes Secret volumes, named after the variable: /run/secrets/SHARELOCK_DATABASE_URL
# becomes SHARELOCK_DATABASE_URL for this process only. They never appear in the image, the
# Compose file or `docker inspect`. The HSM PIN stays a file (SHARELOCK_HSM_PIN_FILE).
set -eu
for file in /run/secrets/SHARELOCK_*; do
  [ -f "$file" ] || continue
  name=$(basename "$file")
  value=$(cat "$file")
  export "$name=$value"
done
exec "$@"
