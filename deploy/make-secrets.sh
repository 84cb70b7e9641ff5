#!/bin/sh
# Create the secret files deploy/compose.yaml mounts (random values; existing files
# are kept, so running it again never changes a PIN under an existing token).
#   deploy/secrets/pkcs11_pin         the token's user PIN (workers, hsm-init)
#   deploy/secrets/pkcs11_so_pin      the token's security-officer PIN (hsm-init only)
#   deploy/secrets/redis_password     Redis password (redis, workers)
#   deploy/secrets/cluster_secret     keys the workers' signed calls to each other (workers)
#   deploy/secrets/web_ca.pem         the private CA of the workers' HTTPS certificates
#                                     (workers, Prometheus); web_ca.key signs, never mounted
#   deploy/secrets/<worker>_tls.pem   a worker's certificate (its service name, localhost)
#   deploy/secrets/<worker>_tls.key   and its private key
#   deploy/secrets/metrics_key        Prometheus' API key (viewer) for /metrics
#   deploy/secrets/api_keys.yaml      hashed API keys (ZONEAPP_API_KEYS_FILE); add yours
#                                     with `faust -A zoneapp hash-api-key`
# Files are world-readable inside a 0700 directory: compose bind-mounts them with
# the host's mode, and the containers run as non-root users (zoneapp uid 10001).
set -eu
dir=$(dirname "$0")/secrets
workers="worker-restricted worker-confidential"
umask 077
mkdir -p "$dir"
chmod 0700 "$dir"

random_file() {  # name bytes
    file=$dir/$1
    if [ -s "$file" ]; then
        echo "kept    $file"
        return
    fi
    head -c "$2" /dev/urandom | od -An -tx1 | tr -d ' \n' > "$file"
    chmod 0444 "$file"
    echo "created $file"
}

for name in pkcs11_pin pkcs11_so_pin redis_password; do
    random_file "$name" 24
done
random_file cluster_secret 32

if [ ! -s "$dir/metrics_key" ]; then
    printf 'zk_%s' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$dir/metrics_key"
    chmod 0444 "$dir/metrics_key"
    rm -f "$dir/api_keys.yaml"
    echo "created $dir/metrics_key"
fi
if [ ! -s "$dir/api_keys.yaml" ]; then
    digest=$(tr -d '\n' < "$dir/metrics_key" | sha256sum | cut -d' ' -f1)
    cat > "$dir/api_keys.yaml" <<KEYS
# Hashed API keys for the workers' HTTP API (README, "API keys").
keys:
  - name: prometheus
    sha256: "$digest"
    roles: [viewer]
KEYS
    chmod 0444 "$dir/api_keys.yaml"
    echo "created $dir/api_keys.yaml"
fi

if [ ! -s "$dir/web_ca.pem" ]; then
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout "$dir/web_ca.key" -out "$dir/web_ca.pem" -days 825 \
        -subj "/CN=zoneapp web CA" -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    chmod 0400 "$dir/web_ca.key"
    chmod 0444 "$dir/web_ca.pem"
    echo "created $dir/web_ca.pem"
fi
for worker in $workers; do
    cert=$dir/${worker}_tls.pem
    key=$dir/${worker}_tls.key
    if [ -s "$cert" ] && [ -s "$key" ]; then
        echo "kept    $cert"
        continue
    fi
    printf 'subjectAltName=DNS:%s,DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' \
        "$worker" > "$dir/$worker.ext"
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout "$key" -out "$dir/$worker.csr" -subj "/CN=$worker" 2>/dev/null
    openssl x509 -req -in "$dir/$worker.csr" -CA "$dir/web_ca.pem" -CAkey "$dir/web_ca.key" \
        -CAcreateserial -days 825 -extfile "$dir/$worker.ext" -out "$cert" 2>/dev/null
    rm -f "$dir/$worker.csr" "$dir/$worker.ext" "$dir/web_ca.srl"
    chmod 0444 "$cert" "$key"
    echo "created $cert"
done
