#!/usr/bin/env bash
# Install the Debian packages the recipes and tests use: espeak-ng and flite (speech
# synthesis for recipes/synth), sox (audio tools), sctk (sclite, the WER reference).
#
#   sudo tools/install_deps.sh
#
# As root it installs what is missing; otherwise it prints the apt-get command to run and
# exits 1. Already-installed packages are detected and nothing is done.
set -euo pipefail
packages=(espeak-ng flite sox sctk)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "install_deps: missing Debian packages: ${missing[*]}" >&2
  echo "install_deps: run as root:  sudo sh -c '$cmd'" >&2
  exit 1
fi
echo "install_deps: installing ${missing[*]}" >&2
sh -c "$cmd" >&2
