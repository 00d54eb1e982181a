#!/usr/bin/env bash
# Builds data/emoji (or the folder given): the 3,655 colour emoji of Noto Color Emoji (Debian's
# fonts-noto-color-emoji, Apache-2.0) as NAME.png, each captioned by NAME.txt with its CLDR
# short name from Unicode's emoji-test.txt (Debian's unicode-data): "grinning face",
# "thumbs up: medium skin tone", "flag: France". Installs the three Debian packages it reads
# when they are missing (apt-get, as root). Nothing of the images is committed.
#
#   bash scripts/emoji-dataset.sh [OUT]        # default data/emoji
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-data/emoji}"
need=()
[ -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || need+=(fonts-noto-color-emoji)
[ -f /usr/share/unicode/emoji/emoji-test.txt ] || need+=(unicode-data)
/usr/bin/python3 -c 'import fontTools' 2>/dev/null || need+=(python3-fonttools)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]} (apt-get)" >&2
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get install -y "${need[@]}" >&2 || { $SUDO apt-get update >&2 && $SUDO apt-get install -y "${need[@]}" >&2; }
fi
/usr/bin/python3 scripts/emoji_dataset.py "$out"
