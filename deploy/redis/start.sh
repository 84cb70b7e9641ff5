#!/bin/sh
# Start redis-server with deploy/redis/redis.conf plus the password from a secret file.
# The password is written into a private config file (never onto a command line,
# where `ps` would show it). With REDIS_ACL_USER set, it becomes that ACL user's
# password, restricted to the vault's keys, and the default user is switched off.
set -eu
base=${REDIS_BASE_CONF:-/usr/local/etc/redis/redis.conf}
secret=${REDIS_PASSWORD_FILE:-/run/secrets/redis_password}
conf=${REDIS_RUNTIME_CONF:-/tmp/redis-zoneapp.conf}
# The vault user's keys and commands: the output of `python -m zoneapp.vault.layout`
# (zoneapp/vault/layout.py is the source of truth; tests/unit/vault/test_layout.py
# fails when this line differs from it).
ZONEAPP_VAULT_ACL='resetkeys ~zoneapp:tok:* ~zoneapp:tokidx:* ~zoneapp:subj:* ~zoneapp:skey:* resetchannels -@all +get +set +sadd +smembers +del +multi +exec +ping'

if [ ! -s "$secret" ]; then
    echo "redis: password file $secret is missing or empty" >&2
    exit 1
fi
password=$(cat "$secret")

umask 077
cat "$base" > "$conf"
if [ -n "${REDIS_ACL_USER:-}" ]; then
    # Least privilege: only the vault's keys, only the commands the vault uses.
    printf 'user default off\n' >> "$conf"
    printf 'user %s on >%s %s\n' "$REDIS_ACL_USER" "$password" "$ZONEAPP_VAULT_ACL" >> "$conf"
else
    printf 'requirepass %s\n' "$password" >> "$conf"
fi
unset password

# The official image's entrypoint drops root (to the redis user) for redis-server.
if id redis >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    chown redis "$conf"
fi
if command -v docker-entrypoint.sh >/dev/null 2>&1; then
    exec docker-entrypoint.sh redis-server "$conf"
fi
exec redis-server "$conf"
