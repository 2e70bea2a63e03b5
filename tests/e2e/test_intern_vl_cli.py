"""InternVL (template ``intern_vl``) through the stock llamafactory-cli: each stage the family layer declares
for it trains a few steps on the session's tiny model (embedding without spare rows), saves, reloads and predicts
(one test per "yes" cell of the coverage table, named ``test_<stage>_on_intern_vl``); stock ``sft`` trains on real
videos (two of different lengths in one message, one in the second user turn)."""

import pytest

from .family_checks import check_action_cls, check_scst, check_stock_sft


pytestmark = pytest.mark.e2e


def test_action_cls_on_intern_vl(tiny_intern_vl, action_data, tmp_path):
    check_action_cls(tiny_intern_vl, "intern_vl", action_data, str(tmp_path))


def test_stock_sft_on_intern_vl_real_videos(tiny_intern_vl, tmp_path):
    check_stock_sft(tiny_intern_vl, "intern_vl", str(tmp_path))


def test_scst_on_intern_vl(tiny_intern_vl, caption_data, tmp_path):
    check_scst(tiny_intern_vl, "intern_vl", caption_data, str(tmp_path))
