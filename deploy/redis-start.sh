#!/bin/sh
# Compose: fill in a deploy/redis/ template (mounted read-only) from this container's
# environment and secret files, the way docs/operations.md's `envsubst` does, then start.
#   redis-start.sh redis    [extra redis-server arguments, e.g. --replicaof 10.89.1.11 6379]
#   redis-start.sh sentinel
# Passwords come from /run/secrets/redis_<user>_password; the templates want each in clear
# where Redis must present it and as its SHA-256 in the ACL lines.
set -eu
kind=$1
shift
sha256() { printf %s "$1" | sha256sum | cut -d' ' -f1; }
for user in BROKER REPLICATION MONITOR ADMIN PEER CLIENT; do
  file="/run/secrets/redis_$(echo "$user" | tr 'A-Z' 'a-z')_password"
  [ -f "$file" ] || continue
  password=$(cat "$file")
  export "${user}_PASSWORD=$password" "${user}_PASSWORD_SHA256=$(sha256 "$password")"
done
render() {
  # ${NAME} -> its value; an unset one stops here rather than starting a half-configured node.
  perl -pe 's/\$\{(\w+)\}/defined $ENV{$1} ? $ENV{$1} : die "redis-start: $1 is not set\n"/ge' \
    "$1" > "$2.new"
  chmod 600 "$2.new"
  mv "$2.new" "$2"
}
case "$kind" in
  redis)
    render /usr/local/etc/redis/redis.conf /data/redis.conf
    exec redis-server /data/redis.conf "$@"
    ;;
  sentinel)
    # Sentinel rewrites its file with what it learnt (the current primary): render it once.
    [ -f /data/sentinel.conf ] || render /usr/local/etc/redis/sentinel.conf /data/sentinel.conf
    exec redis-server /data/sentinel.conf --sentinel "$@"
    ;;
  *)
    echo "usage: redis-start.sh redis|sentinel [arguments]" >&2
    exit 2
    ;;
esac
