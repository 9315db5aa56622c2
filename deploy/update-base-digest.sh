#!/usr/bin/env bash
# Replace the digest of the Containerfile's BASE_IMAGE with the current digest of its tag.
#   deploy/update-base-digest.sh            # same tag (e.g. ubi-minimal:9.8), new digest
#   deploy/update-base-digest.sh 9.9        # another tag (a new RHEL 9 minor)
# Needs the registry (skopeo, or podman); review the diff and commit it with the date. The
# digest is the image index (manifest list), so one pin serves every architecture.
set -euo pipefail
cd "$(dirname "$0")/.."
line=$(grep -E '^ARG BASE_IMAGE=' Containerfile)
ref=${line#ARG BASE_IMAGE=}
repo=${ref%%@*}; repo=${repo%:*}
tag=${1:-$(sed -E 's/^[^:]+:([^@]+).*/\1/' <<<"${ref#*/}")}
if command -v skopeo >/dev/null; then
    digest=$(skopeo inspect --raw "docker://$repo:$tag" | sha256sum | awk '{print "sha256:" $1}')
elif command -v podman >/dev/null; then
    podman pull -q "$repo:$tag" >/dev/null
    digest=$(podman image inspect --format '{{.Digest}}' "$repo:$tag")
else
    echo "update-base-digest.sh: needs skopeo or podman (and the registry $repo)" >&2
    exit 2
fi
case $digest in sha256:[0-9a-f]*) ;; *) echo "no digest for $repo:$tag: $digest" >&2; exit 1 ;; esac
sed -i -E "s|^ARG BASE_IMAGE=.*|ARG BASE_IMAGE=$repo:$tag@$digest|" Containerfile
echo "BASE_IMAGE=$repo:$tag@$digest"
