#!/usr/bin/env bash
# Make the secret files compose.yaml mounts, once: ./scripts/compose-secrets.sh [DIR]
# (default ./secrets beside compose.yaml). Run it as root (sudo): compose mounts secret files
# with their owner and mode from the host, so each is made readable by the one container user
# that needs it and by nobody else (0400): 10001, the image's `marlin`, and 999, the postgres
# image's `postgres`.
#
# A file that exists is never changed: a new audit key would sign events the old one cannot
# verify, and a new database password would not match the one the database was created with.
# Provider keys and the single sign-on client secret are made empty; write yours into them
# (printf '%s' "$KEY" | sudo tee secrets/anthropic_api_key >/dev/null).
set -euo pipefail

MARLIN_UID=10001
POSTGRES_UID=999
dir="${1:-$(cd "$(dirname "$0")/.." && pwd)/secrets}"

if [ "$(id -u)" != "0" ]; then
  echo "Run it as root (sudo $0 ${1:-}): the files are handed to the containers' users" \
    "(uid $MARLIN_UID for Marlin, $POSTGRES_UID for PostgreSQL)." >&2
  exit 1
fi

umask 077
mkdir -p "$dir"
chmod 0755 "$dir"

random_secret() {
  # 48 random bytes as URL-safe base64: 64 characters, safe inside a database URL.
  head -c 48 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '='
}

# write_secret NAME OWNER [CONTENT]: write DIR/NAME (unless it exists) readable by OWNER only.
write_secret() {
  local path="$dir/$1" owner="$2" content="${3-}"
  if [ -e "$path" ]; then
    echo "kept     $path"
    return
  fi
  printf '%s' "$content" >"$path.partial"
  chown "$owner:$owner" "$path.partial"
  chmod 0400 "$path.partial"
  mv "$path.partial" "$path"
  echo "made     $path"
}

write_secret secret_key "$MARLIN_UID" "$(random_secret)"
write_secret audit_key "$MARLIN_UID" "$(random_secret)"
write_secret metrics_token "$MARLIN_UID" "$(random_secret)"
write_secret postgres_password "$POSTGRES_UID" "$(random_secret)"
write_secret database_url "$MARLIN_UID" "postgres://marlin:$(cat "$dir/postgres_password")@db:5432/marlin"
write_secret oidc_client_secret "$MARLIN_UID"
write_secret anthropic_api_key "$MARLIN_UID"
write_secret openai_api_key "$MARLIN_UID"
echo "Keep a copy of $dir/audit_key somewhere safe: backups hold its id, never the key (docs/deploy.md)."
