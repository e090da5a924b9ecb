#!/bin/bash
# Builds a busybox image from the busybox-static package without any registry, with plain
# shell + tar + sha256sum, in two archive formats:
#   OUT/busybox-oci.tar     OCI image layout (oci-layout, index.json, blobs/sha256/…) for
#                           `ctr images import` (named by the io.containerd.image.name annotation)
#   OUT/busybox-docker.tar  docker-archive (manifest.json, repositories, config, layer) for
#                           `docker load` and `podman load`
# Usage: build-image.sh OUTDIR [NAME]   (NAME default: rrbusybox:latest)
# The image: /bin/busybox with an applet symlink for each applet, /etc/passwd and /etc/group,
# /tmp, /www/index.html (for `httpd -h /www`), Cmd ["sh"].
set -euo pipefail
OUT=${1:?usage: build-image.sh OUTDIR [NAME]}
NAME=${2:-rrbusybox:latest}
BUSYBOX=${BUSYBOX:-/bin/busybox}
REPO=${NAME%:*}
TAG=${NAME##*:}
[ "$REPO" != "$NAME" ] || TAG=latest
if ! "$BUSYBOX" --list >/dev/null 2>&1 || ldd "$BUSYBOX" >/dev/null 2>&1; then
    echo "build-image: a static busybox is needed at $BUSYBOX (apt-get install -y busybox-static)" >&2
    exit 1
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "$OUT/.build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ROOT=$WORK/rootfs
mkdir -p "$ROOT/bin" "$ROOT/etc" "$ROOT/tmp" "$ROOT/www" "$ROOT/root" "$ROOT/proc" "$ROOT/sys" \
         "$ROOT/dev" "$ROOT/var" "$ROOT/home/user"
chmod 1777 "$ROOT/tmp"
cp "$BUSYBOX" "$ROOT/bin/busybox"
for app in $("$BUSYBOX" --list); do
    [ "$app" = busybox ] || ln -sf busybox "$ROOT/bin/$app"
done
printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'user:x:1000:1000:user:/home/user:/bin/sh' \
    'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$ROOT/etc/passwd"
printf '%s\n' 'root:x:0:' 'tty:x:5:' 'user:x:1000:' 'nogroup:x:65534:' >"$ROOT/etc/group"
echo 'hello from rrbusybox' >"$ROOT/www/index.html"

# A reproducible, uncompressed layer.
BLOBS=$WORK/oci/blobs/sha256
mkdir -p "$BLOBS"
tar --sort=name --mtime='2024-01-01 00:00:00Z' --owner=0 --group=0 --numeric-owner \
    --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$ROOT" -cf "$WORK/layer.tar" .
sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }
LAYER=$(sha "$WORK/layer.tar")
cp "$WORK/layer.tar" "$BLOBS/$LAYER"

CREATED=2024-01-01T00:00:00Z
printf '%s' '{"architecture":"amd64","os":"linux","created":"'$CREATED'","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:'$LAYER'"]},"history":[{"created":"'$CREATED'","created_by":"integration/callers/build-image.sh (busybox-static)"}]}' >"$WORK/config.json"
CONFIG=$(sha "$WORK/config.json")
cp "$WORK/config.json" "$BLOBS/$CONFIG"

printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'$CONFIG'","size":'$(size "$WORK/config.json")'},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:'$LAYER'","size":'$(size "$WORK/layer.tar")'}]}' >"$WORK/manifest.json"
MANIFEST=$(sha "$WORK/manifest.json")
cp "$WORK/manifest.json" "$BLOBS/$MANIFEST"

# Fully qualified name for containerd (what `ctr run` is given).
case "$REPO" in
    */*/*|*.*/*|localhost/*) FULL=$REPO ;;
    */*) FULL=docker.io/$REPO ;;
    *) FULL=docker.io/library/$REPO ;;
esac
printf '%s' '{"imageLayoutVersion":"1.0.0"}' >"$WORK/oci/oci-layout"
printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:'$MANIFEST'","size":'$(size "$WORK/manifest.json")',"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"'$FULL:$TAG'","org.opencontainers.image.ref.name":"'$TAG'"}}]}' >"$WORK/oci/index.json"
tar --sort=name --mtime='2024-01-01 00:00:00Z' --owner=0 --group=0 --numeric-owner \
    -C "$WORK/oci" -cf "$OUT/busybox-oci.tar" oci-layout index.json blobs

# docker-archive: the same config and layer under docker's names.
D=$WORK/docker
mkdir -p "$D/$LAYER"
cp "$WORK/layer.tar" "$D/$LAYER/layer.tar"
printf '1.0' >"$D/$LAYER/VERSION"
printf '%s' '{"id":"'$LAYER'","created":"'$CREATED'","os":"linux"}' >"$D/$LAYER/json"
cp "$WORK/config.json" "$D/$CONFIG.json"
printf '%s' '[{"Config":"'$CONFIG'.json","RepoTags":["'$REPO:$TAG'"],"Layers":["'$LAYER'/layer.tar"]}]' >"$D/manifest.json"
printf '%s' '{"'$REPO'":{"'$TAG'":"'$LAYER'"}}' >"$D/repositories"
tar --sort=name --mtime='2024-01-01 00:00:00Z' --owner=0 --group=0 --numeric-owner \
    -C "$D" -cf "$OUT/busybox-docker.tar" manifest.json repositories "$CONFIG.json" "$LAYER"
echo "built $OUT/busybox-oci.tar ($FULL:$TAG) and $OUT/busybox-docker.tar ($REPO:$TAG), image id sha256:$CONFIG"
