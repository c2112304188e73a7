#!/usr/bin/env bash
# System packages for the demo corpus: espeak-ng (spoken audio), wordnet-base (WordNet glosses) and
# fonts-noto-color-emoji (emoji images). Installed with apt-get when it is available and we are root;
# otherwise prints what is missing. Every one is optional: the corpus skips a missing source with a message.
set -u
missing=()
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
[ -e /usr/share/wordnet/data.noun ] || missing+=(wordnet-base)
[ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || missing+=(fonts-noto-color-emoji)
[ ${#missing[@]} -eq 0 ] && exit 0

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "Installing system packages for the demo corpus: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    exit 0
  fi
  echo "warning: apt-get could not install ${missing[*]}; the demo corpus will skip those sources." >&2
elif command -v apt-get >/dev/null 2>&1; then
  echo "note: run 'sudo apt-get install ${missing[*]}' for the full demo corpus; continuing without them." >&2
else
  echo "note: install ${missing[*]} with your package manager for the full demo corpus; continuing without them." >&2
fi
exit 0
