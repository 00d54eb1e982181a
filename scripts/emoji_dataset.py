#!/usr/bin/python3
"""Builds a captioned image folder from the Noto Color Emoji font of Debian's
fonts-noto-color-emoji package: one NAME.png (the font's own 136x128 colour bitmap, RGBA)
beside one NAME.txt (the emoji's CLDR short name from unicode-data's emoji-test.txt, e.g.
"grinning face", "thumbs up: medium skin tone", "flag: France").

Every fully-qualified emoji of emoji-test.txt that the font draws is written: single code
points through the font's cmap, sequences (skin tones, ZWJ families, flags, keycaps) through
its GSUB ligatures. The images are the font's (Apache-2.0, Google); nothing is redrawn.

usage: emoji_dataset.py OUTDIR [--font PATH] [--emoji-test PATH]
"""
import argparse
import os
import re
import sys

try:
    from fontTools.ttLib import TTFont
except ImportError:
    sys.exit("emoji_dataset.py: fontTools is missing: apt-get install python3-fonttools (and run with /usr/bin/python3)")


def ligatures(font):
    """(first glyph, component glyphs...) -> ligature glyph, from every GSUB ligature lookup."""
    table = {}
    for lookup in font["GSUB"].table.LookupList.Lookup:
        for sub in lookup.SubTable:
            if lookup.LookupType == 7:          # extension: the real subtable inside
                sub = sub.ExtSubTable
            if getattr(sub, "LookupType", lookup.LookupType) != 4:
                continue
            for first, ligs in sub.ligatures.items():
                for lig in ligs:
                    table[(first, *lig.Component)] = lig.LigGlyph
    return table


def glyph_for(codepoints, cmap, ligs):
    glyphs = [cmap.get(cp) for cp in codepoints]
    if len(glyphs) == 1:
        return glyphs[0]
    for seq in (glyphs, [g for g, cp in zip(glyphs, codepoints) if cp != 0xFE0F]):
        if None in seq:
            continue
        if len(seq) == 1:
            return seq[0]
        if tuple(seq) in ligs:
            return ligs[tuple(seq)]
    return None


def slug(name):
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--font", default="/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
    ap.add_argument("--emoji-test", default="/usr/share/unicode/emoji/emoji-test.txt")
    a = ap.parse_args()
    for path, package in ((a.font, "fonts-noto-color-emoji"), (a.emoji_test, "unicode-data")):
        if not os.path.exists(path):
            sys.exit(f"emoji_dataset.py: {path} is missing: apt-get install {package}")
    font = TTFont(a.font)
    cmap = font.getBestCmap()
    ligs = ligatures(font)
    strike = font["CBDT"].strikeData[0]
    os.makedirs(a.out, exist_ok=True)
    written = missing = 0
    line_re = re.compile(r"^([0-9A-F ]+?)\s*;\s*fully-qualified\s*#\s*\S+\s+E[0-9.]+\s+(.+)$")
    with open(a.emoji_test, encoding="utf-8") as f:
        for line in f:
            m = line_re.match(line.strip())
            if not m:
                continue
            cps = [int(c, 16) for c in m.group(1).split()]
            name = m.group(2).strip()
            glyph = glyph_for(cps, cmap, ligs)
            if glyph is None or glyph not in strike:
                missing += 1
                continue
            bitmap = strike[glyph]
            bitmap.ensureDecompiled()
            png = bitmap.imageData
            if not png.startswith(b"\x89PNG"):
                missing += 1
                continue
            stem = f"{written:04d}-{slug(name)}"
            with open(os.path.join(a.out, stem + ".png"), "wb") as g:
                g.write(png)
            with open(os.path.join(a.out, stem + ".txt"), "w", encoding="utf-8") as g:
                g.write(name + "\n")
            written += 1
    with open(os.path.join(a.out, "LICENSE.txt"), "w", encoding="utf-8") as g:
        g.write("The images are the bitmaps of Noto Color Emoji (Google), from Debian's fonts-noto-color-emoji,\n"
                "licensed under the Apache License, Version 2.0 (/usr/share/doc/fonts-noto-color-emoji/copyright).\n"
                "The captions are the CLDR short names of Unicode's emoji-test.txt (Debian's unicode-data;\n"
                "the Unicode licence, /usr/share/doc/unicode-data/copyright).\n")
    print(f"{a.out}: {written} captioned images ({missing} emoji of emoji-test.txt the font does not draw)")


if __name__ == "__main__":
    main()
