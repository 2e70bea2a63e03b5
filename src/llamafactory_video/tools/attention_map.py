r"""``llamafactory-video attention-map``: the seed's visualisation of a ``sparc_align`` model: for each content token
of ``--text``, its SPARC alignment weights over the patches of every sampled frame, overlaid on the frames.

Writes ``--output`` (PNG: one row per token, one column per frame, plus a first row with the raw frames) and the
same path with ``.gif`` (one animated frame per video frame, all tokens side by side). ``--all-tokens`` also draws
tokens the language mask drops.
"""

import argparse
import os
import sys

HELP = "PNG grid + animated GIF of per-frame token-to-patch weights of a sparc_align model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="output_dir of a sparc_align run")
    parser.add_argument("--video", required=True, help="video file")
    parser.add_argument("--text", required=True, help="caption whose tokens are mapped")
    parser.add_argument("--output", required=True, help="PNG path; the GIF goes next to it")
    parser.add_argument("--all-tokens", action="store_true", help="also draw tokens without visual content")
    parser.add_argument("--device", default="cpu")


def overlay(frame, weights, size: int = 128):
    r"""``frame`` (PIL) resized to ``size`` with the ``(h, w)`` weight map as a red heat overlay."""
    import numpy as np
    from PIL import Image

    base = np.asarray(frame.convert("RGB").resize((size, size)), dtype=np.float32)
    heat = weights / max(float(weights.max()), 1e-12)
    heat = np.asarray(Image.fromarray((heat * 255).astype(np.uint8)).resize((size, size), Image.NEAREST), np.float32)
    alpha = 0.6 * heat[..., None] / 255.0
    red = np.zeros_like(base)
    red[..., 0] = 255.0
    return Image.fromarray(np.clip(base * (1 - alpha) + red * alpha, 0, 255).astype(np.uint8))


def render(result: dict, all_tokens: bool, png_path: str, cell: int = 128) -> tuple[str, str, list[str]]:
    from PIL import Image, ImageDraw

    weights = result["weights"].numpy()  # (L, T, h, w)
    frames = result["frames"]
    rows = [i for i, keep in enumerate(result["token_mask"]) if keep or all_tokens]
    if not rows:
        raise ValueError("no token of the text carries visual content (all are stop words); use --all-tokens")
    label_w = 110
    t = weights.shape[1]
    grid = Image.new("RGB", (label_w + t * cell, (len(rows) + 1) * cell), "white")
    draw = ImageDraw.Draw(grid)
    draw.text((4, cell // 2), "frames", fill="black")
    for j in range(t):
        grid.paste(frames[j].convert("RGB").resize((cell, cell)), (label_w + j * cell, 0))
    names = []
    for r, i in enumerate(rows, start=1):
        name = result["tokens"][i].replace("</w>", "")
        names.append(name)
        draw.text((4, r * cell + cell // 2), name[:16], fill="black")
        for j in range(t):
            grid.paste(overlay(frames[j], weights[i, j], cell), (label_w + j * cell, r * cell))
    os.makedirs(os.path.dirname(os.path.abspath(png_path)), exist_ok=True)
    grid.save(png_path)
    gif_path = os.path.splitext(png_path)[0] + ".gif"
    pages = []
    for j in range(t):
        page = Image.new("RGB", (len(rows) * cell, cell + 16), "white")
        pdraw = ImageDraw.Draw(page)
        for r, i in enumerate(rows):
            page.paste(overlay(frames[j], weights[i, j], cell), (r * cell, 16))
            pdraw.text((r * cell + 2, 2), names[r][:16], fill="black")
        pages.append(page)
    pages[0].save(gif_path, save_all=True, append_images=pages[1:], duration=500, loop=0)
    return png_path, gif_path, names


def run(args: argparse.Namespace) -> int:
    for label, path in (("--model", args.model), ("--video", args.video)):
        if not os.path.exists(path):
            print(f"error: {label} {path} does not exist", file=sys.stderr)
            return 2
    if not args.text.strip():
        print("error: --text is empty", file=sys.stderr)
        return 2
    from ..model.dual_encoder import load_dual_encoder

    encoder = load_dual_encoder(args.model, device=args.device)
    result = encoder.token_patch_weights(args.video, args.text)
    try:
        png, gif, names = render(result, args.all_tokens, args.output)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {png} and {gif}: {len(names)} tokens ({', '.join(names)}) x {len(result['frames'])} frames")
    return 0


COMMAND = (HELP, add_arguments, run)
