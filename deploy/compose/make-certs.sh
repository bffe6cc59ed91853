#!/usr/bin/env bash
# A private CA and a server certificate for the broker, for trials and small sites.
#   deploy/compose/make-certs.sh DIR [HOSTNAME]
# writes DIR/ca.crt, DIR/ca.key, DIR/server.crt, DIR/server.key (valid 825 days).
# Give agents DIR/ca.crt as [mqtt] ca_file. Keep ca.key offline.
set -euo pipefail
dir=${1:?usage: make-certs.sh DIR [HOSTNAME]}
host=${2:-outpost.example.com}
mkdir -p "$dir"
cd "$dir"
[[ -f ca.key ]] || openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout ca.key -out ca.crt -days 3650 -subj "/CN=Outpost broker CA"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key \
    -out server.csr -subj "/CN=$host"
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt \
    -days 825 -extfile <(printf "subjectAltName=DNS:%s\n" "$host")
rm -f server.csr
chmod 600 ca.key server.key
echo "wrote $dir/ca.crt and $dir/server.{crt,key} for $host"
