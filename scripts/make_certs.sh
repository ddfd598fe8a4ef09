#!/usr/bin/env bash
# Make a cluster CA and node certificates for Dandelion's mutual TLS (docs/security.md), with openssl.
#
#   scripts/make_certs.sh DIR                       # a test cluster on loopback (see below)
#   scripts/make_certs.sh DIR sn=10.0.0.5,sn.lan peer7=10.0.0.7 ops-admin
#
# Each NAME=SAN[,SAN...] makes DIR/NAME.pem and DIR/NAME-key.pem: a certificate with common name NAME, for
# both server and client use, valid for those IP addresses and DNS names. A NAME without '=' makes a client-only
# certificate (for grpcurl, dfget preheat): give the supernode `--admin-cn NAME` to let it inspect, or call it
# dandelion-admin, the default admin name. The CA (DIR/ca.pem, DIR/ca-key.pem) is made once and reused, so
# running the script again adds nodes to the same cluster. Keys are written with mode 0600.
#
# Without NAME arguments it makes, for a cluster on one machine:
#   node             127.0.0.1 ... 127.0.0.16, ::1, localhost, and the DNS names supernode and dandelion
#   dandelion-seed   the same addresses and names, for a seed peer (dfdaemon --seed): the supernode's default
#                    --seed-cn, the common name that may register a seed peer
#   dandelion-admin  a client certificate that may call the inspection RPCs
#
# DANDELION_CERT_DAYS sets the validity (default 825 days).
set -euo pipefail

usage() { echo "usage: $0 DIR [NAME=SAN[,SAN...] | NAME]..." >&2; exit 2; }
[ $# -ge 1 ] || usage
case "$1" in -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
command -v openssl >/dev/null || { echo "$0: openssl is needed (apt-get install openssl)" >&2; exit 1; }

DIR=$1
shift
DAYS=${DANDELION_CERT_DAYS:-825}
case "$DAYS" in ''|*[!0-9]*) echo "$0: DANDELION_CERT_DAYS must be a number of days" >&2; exit 2 ;; esac
if [ $# -eq 0 ]; then
    sans=""
    for i in $(seq 1 16); do sans="$sans,127.0.0.$i"; done
    set -- "node=${sans#,},::1,localhost,supernode,dandelion" "dandelion-seed=${sans#,},::1,localhost,seed,dandelion" \
        dandelion-admin
fi

mkdir -p "$DIR"
umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
serial() { echo "0x$(openssl rand -hex 16)"; }

if [ ! -s "$DIR/ca.pem" ] || [ ! -s "$DIR/ca-key.pem" ]; then
    newkey "$DIR/ca-key.pem"
    openssl req -x509 -new -key "$DIR/ca-key.pem" -out "$DIR/ca.pem" -days "$DAYS" -sha256 \
        -subj "/O=Dandelion/CN=Dandelion cluster CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    chmod 0644 "$DIR/ca.pem"
    echo "made CA $DIR/ca.pem"
else
    echo "using CA $DIR/ca.pem"
fi

for spec in "$@"; do
    name=${spec%%=*}
    case "$name" in ''|*[!A-Za-z0-9._-]*) echo "$0: bad certificate name '$name'" >&2; exit 2 ;; esac
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        if [ "$spec" = "$name" ]; then
            echo "extendedKeyUsage=clientAuth"
        else
            echo "extendedKeyUsage=serverAuth,clientAuth"
            alt=""
            IFS=',' read -r -a entries <<< "${spec#*=}"
            for entry in "${entries[@]}"; do
                [ -n "$entry" ] || continue
                if [[ "$entry" =~ ^[0-9.]+$ || "$entry" == *:* ]]; then alt="$alt,IP:$entry"; else alt="$alt,DNS:$entry"; fi
            done
            [ -n "$alt" ] || { echo "$0: $name= needs at least one address or name" >&2; exit 2; }
            echo "subjectAltName=${alt#,}"
        fi
    } > "$work/$name.ext"
    newkey "$DIR/$name-key.pem"
    openssl req -new -key "$DIR/$name-key.pem" -out "$work/$name.csr" -subj "/O=Dandelion/CN=$name"
    openssl x509 -req -in "$work/$name.csr" -CA "$DIR/ca.pem" -CAkey "$DIR/ca-key.pem" -set_serial "$(serial)" \
        -days "$DAYS" -sha256 -extfile "$work/$name.ext" -out "$DIR/$name.pem" 2>/dev/null
    chmod 0644 "$DIR/$name.pem"
    echo "made $DIR/$name.pem and $DIR/$name-key.pem"
done
