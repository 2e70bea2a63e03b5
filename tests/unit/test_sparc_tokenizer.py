"""The tiny CLIP tokenizer of the sparc_align tests is deterministic: two separate processes write byte-identical
tokenizer files, and the colour / shape / position words of the synthetic captions are single tokens."""

import hashlib
import os
import subprocess
import sys

BUILD = """
import sys
from llamafactory_video.testing.tiny_dual_encoder import build_tiny_clip_tokenizer
build_tiny_clip_tokenizer().save_pretrained(sys.argv[1])
"""


def _digest(path: str) -> str:
    with open(os.path.join(path, "tokenizer.json"), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_tiny_clip_tokenizer_is_identical_across_processes(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    digests = []
    for name in ("a", "b"):
        out = str(tmp_path / name)
        proc = subprocess.run([sys.executable, "-c", BUILD, out], env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        digests.append(_digest(out))
    assert digests[0] == digests[1]


def test_tiny_clip_tokenizer_vocabulary():
    from llamafactory_video.testing.synthetic_videos import ALIGNMENT_COLOURS, ALIGNMENT_POSITIONS, ALIGNMENT_SHAPES
    from llamafactory_video.testing.tiny_dual_encoder import build_tiny_clip_tokenizer

    tok = build_tiny_clip_tokenizer()
    assert len(tok) == 1024 and tok.bos_token_id == 0 and tok.eos_token_id == 1
    words = [c for c, _ in ALIGNMENT_COLOURS] + list(ALIGNMENT_SHAPES)
    for word in words:
        ids = tok(word, add_special_tokens=False)["input_ids"]
        assert tok.convert_ids_to_tokens(ids) == [f"{word}</w>"], (word, ids)
    caption = f"a {ALIGNMENT_COLOURS[0][0]} {ALIGNMENT_SHAPES[0]} {ALIGNMENT_POSITIONS[0][0]}"
    assert tok.decode(tok(caption)["input_ids"], skip_special_tokens=True) == caption
