import pytest

from llamafactory_video.testing.synthetic_videos import make_action_dataset
from llamafactory_video.testing.tiny_model import build_tiny_model

from .helpers import HILIGHT_NUM_FRAMES


@pytest.fixture(scope="session")
def tiny_qwen25vl(tmp_path_factory) -> str:
    return build_tiny_model(str(tmp_path_factory.mktemp("models") / "tiny-qwen2_5-vl"), arch="qwen2_5_vl")


@pytest.fixture(scope="session")
def action_data(tmp_path_factory) -> dict:
    return make_action_dataset(
        str(tmp_path_factory.mktemp("action_data")), num_classes=4, train_per_class=24, test_per_class=8
    )


@pytest.fixture(scope="session")
def caption_data(tmp_path_factory) -> dict:
    from llamafactory_video.testing.synthetic_videos import make_caption_dataset

    return make_caption_dataset(
        str(tmp_path_factory.mktemp("caption_data")), num_classes=4, train_per_class=8, test_per_class=4
    )


@pytest.fixture(scope="session")
def tiny_qwen2vl(tmp_path_factory) -> str:
    return build_tiny_model(str(tmp_path_factory.mktemp("models") / "tiny-qwen2-vl"), arch="qwen2_vl")


@pytest.fixture(scope="session")
def tiny_qwen2vl_exact_vocab(tmp_path_factory) -> str:
    r"""Qwen2-VL whose embedding has exactly ``len(tokenizer)`` rows: adding ``<ACTION>`` resizes it (like
    LLaVA-NeXT-Video, InternVL and any checkpoint whose tokenizer fills its embedding)."""
    return build_tiny_model(
        str(tmp_path_factory.mktemp("models") / "tiny-qwen2-vl-exact"), arch="qwen2_vl", vocab_layout="exact"
    )


@pytest.fixture(scope="session")
def tiny_qwen3vl(tmp_path_factory) -> str:
    r"""One tiny Qwen3-VL per session (``testing/tiny_families.py``), shared by every Qwen3-VL e2e test."""
    from llamafactory_video.testing.tiny_families import build_tiny_qwen3_vl

    return build_tiny_qwen3_vl(str(tmp_path_factory.mktemp("models") / "tiny-qwen3-vl"))


@pytest.fixture(scope="session")
def tiny_intern_vl(tmp_path_factory) -> str:
    r"""One tiny InternVL per session (``testing/tiny_beyond_qwen.py``), embedding without spare rows as the
    released -hf checkpoints: ``<ACTION>`` resizes it."""
    from llamafactory_video.testing.tiny_families import FAMILY_BUILDERS

    return FAMILY_BUILDERS["intern_vl"](
        str(tmp_path_factory.mktemp("models") / "tiny-intern-vl"), vocab_layout="exact"
    )


@pytest.fixture(scope="session")
def tiny_llava_next_video(tmp_path_factory) -> str:
    r"""One tiny LLaVA-NeXT-Video per session, embedding without spare rows as the released -hf checkpoint."""
    from llamafactory_video.testing.tiny_families import FAMILY_BUILDERS

    return FAMILY_BUILDERS["llava_next_video"](
        str(tmp_path_factory.mktemp("models") / "tiny-llava-next-video"), vocab_layout="exact"
    )


@pytest.fixture(scope="session")
def tiny_hilight(tmp_path_factory) -> str:
    r"""One tiny HiLight per session: ``llamafactory-video hilight-build`` (TokenMining ``b``, 2 heads,
    ``HILIGHT_NUM_FRAMES`` frames) on the tiny towers and Qwen2 LM of ``testing/tiny_hilight.py``."""
    from llamafactory_video.cli import main
    from llamafactory_video.testing.tiny_hilight import build_tiny_hilight_inputs

    root = tmp_path_factory.mktemp("models")
    parts = build_tiny_hilight_inputs(root / "hilight-inputs")
    model = str(root / "hilight-tiny")
    argv = ["hilight-build", "--video-tower", parts["video_tower"], "--frame-tower", parts["frame_tower"]]
    argv += ["--llm", parts["llm"], "--token-mining", "b", "--num-frames", str(HILIGHT_NUM_FRAMES)]
    assert main([*argv, "--token-mining-heads", "2", "--output", model]) == 0
    return model
