#!/usr/bin/env python3
"""Example external reward scorer for flowtune (use with --reward "external:python3 scripts/example_scorer.py").

Protocol: one JSON object per line on stdin, {"id": N, "image": "<path to png>", "prompt": "..."};
one line per request on stdout, {"id": N, "score": X} (flowtune checks the id; a bare JSON
number is taken in order). Exactly one line per request, never before it is asked. Stay alive
between lines (flowtune keeps one process for the whole run) and flush after every answer.

This scorer decodes the PNG with Pillow (pip install pillow) and rewards "warm" images: the mean
of R - (G + B) / 2 over pixels, in [-1, 1]. Replace `score` with a real reward model.
"""
import json
import sys

from PIL import Image


def score(path: str, prompt: str) -> float:
    with Image.open(path) as im:
        rgb = im.convert("RGB")
        width, height = rgb.size
        total = 0.0
        for y in range(height):
            for x in range(width):
                r, g, b = rgb.getpixel((x, y))
                total += r - (g + b) / 2
    return total / (255.0 * width * height)


def main() -> None:
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        request = json.loads(line)
        reply = {"id": request["id"], "score": score(request["image"], request.get("prompt", ""))}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
