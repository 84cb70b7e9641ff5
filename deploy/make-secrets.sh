#!/bin/sh
# Create the secret files deploy/compose.yaml mounts (random values; existing files
# are kept, so running it again never changes a PIN under an existing token).
#   deploy/secrets/pkcs11_pin      the token's user PIN (workers, hsm-init)
#   deploy/secrets/pkcs11_so_pin   the token's security-officer PIN (hsm-init only)
#   deploy/secrets/redis_password  Redis password (redis, workers)
# Files are world-readable inside a 0700 directory: compose bind-mounts them with
# the host's mode, and the containers run as non-root users (zoneapp uid 10001).
set -eu
dir=$(dirname "$0")/secrets
umask 077
mkdir -p "$dir"
chmod 0700 "$dir"
for name in pkcs11_pin pkcs11_so_pin redis_password; do
    file=$dir/$name
    if [ -s "$file" ]; then
        echo "kept    $file"
        continue
    fi
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$file"
    chmod 0444 "$file"
    echo "created $file"
done
