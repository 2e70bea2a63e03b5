"""LLaVA-NeXT-Video (template ``llava_next_video``) through the stock llamafactory-cli: each stage the family
layer declares for it trains a few steps on the session's tiny model (embedding without spare rows), saves,
reloads and predicts (one test per "yes" cell of the coverage table, named ``test_<stage>_on_llava_next_video``);
stock ``sft`` trains on real videos (two of different lengths in one message, one in the second user turn)."""

import pytest

from .family_checks import check_action_cls, check_scst, check_stock_sft


pytestmark = pytest.mark.e2e


def test_action_cls_on_llava_next_video(tiny_llava_next_video, action_data, tmp_path):
    check_action_cls(tiny_llava_next_video, "llava_next_video", action_data, str(tmp_path))


def test_stock_sft_on_llava_next_video_real_videos(tiny_llava_next_video, tmp_path):
    check_stock_sft(tiny_llava_next_video, "llava_next_video", str(tmp_path))


def test_scst_on_llava_next_video(tiny_llava_next_video, caption_data, tmp_path):
    check_scst(tiny_llava_next_video, "llava_next_video", caption_data, str(tmp_path))
