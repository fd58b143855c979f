#!/usr/bin/env bash
# Download and extract an archive unless its marker exists:
#
#   tools/download.sh URL DEST_DIR
#
# Extracts into DEST_DIR, leaves DEST_DIR/.<archive>.done. Fails with the URL named when
# the download or extraction fails (e.g. no network: use --data with a local copy instead).
set -euo pipefail
url=$1; dest=$2
name=$(basename "$url")
mkdir -p "$dest"
[ -f "$dest/.$name.done" ] && { echo "download: $name already extracted in $dest"; exit 0; }
if command -v wget >/dev/null; then fetch=(wget -q -c -O "$dest/$name" "$url")
else fetch=(curl -fsSL -C - -o "$dest/$name" "$url"); fi
"${fetch[@]}" || { echo "download: cannot fetch $url (no network? pass --data DIR with the extracted corpus)" >&2; exit 1; }
tar -xzf "$dest/$name" -C "$dest" || { echo "download: cannot extract $dest/$name" >&2; exit 1; }
rm -f "$dest/$name"
touch "$dest/.$name.done"
