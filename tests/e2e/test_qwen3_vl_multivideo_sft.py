"""Stock ``sft`` on Qwen3-VL through the stock llamafactory-cli with the samples LlamaFactory 0.9.5's
``Qwen3VLPlugin`` gets wrong (two real videos of different lengths in one message; a video in the second user turn):
with ``host/qwen3_vl.py`` each video gets its own slots and timestamps and the model trains (0.9.5 alone raises)."""

import pytest

from .family_checks import check_stock_sft


pytestmark = pytest.mark.e2e


def test_stock_sft_on_qwen3_vl_two_videos_and_second_turn(tiny_qwen3vl, tmp_path):
    check_stock_sft(tiny_qwen3vl, "qwen3_vl", str(tmp_path))
