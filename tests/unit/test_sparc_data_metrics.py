"""sparc_align: retrieval metrics, caption batching by video, language mask, captions."""

import numpy as np
import pytest

from llamafactory_video.data.sparc import (
    DEFAULT_STOP_WORDS,
    CaptionBatchSampler,
    caption_batches,
    load_stop_words,
    normalise_captions,
    visual_token_mask,
)
from llamafactory_video.metrics.retrieval import ranks_of_positives, retrieval_metrics


def test_retrieval_metrics_by_hand():
    # 3 videos, 4 captions (caption 3 also describes video 0)
    sim = np.array(
        [
            [0.9, 0.1, 0.2],  # -> video 0, rank 1
            [0.5, 0.4, 0.6],  # -> video 1, rank 3
            [0.1, 0.7, 0.8],  # -> video 2, rank 1
            [0.3, 0.9, 0.1],  # -> video 0, rank 2
        ]
    )
    m = retrieval_metrics(sim, [0, 1, 2, 0])
    assert m["t2v_r1"] == 0.5 and m["t2v_r5"] == 1.0
    assert m["t2v_median_rank"] == 1.5 and m["t2v_mean_rank"] == pytest.approx(7 / 4)
    # video 0: best own caption 0.9 (caption 0), no other caption above -> 1; video 1: own 0.4, above: 0.7, 0.9 -> 3;
    # video 2: own 0.8, above: none -> 1
    assert m["v2t_r1"] == pytest.approx(2 / 3) and m["v2t_mean_rank"] == pytest.approx(5 / 3)


def test_ties_count_against_the_query():
    ranks = ranks_of_positives(np.zeros((3, 3)), np.eye(3, dtype=bool))
    assert ranks.tolist() == [3, 3, 3]  # a collapsed model is not perfect
    with pytest.raises(ValueError):
        ranks_of_positives(np.zeros((2, 2)), np.array([[True, False], [False, False]]))


def test_random_scores_give_chance_recall():
    rng = np.random.default_rng(0)
    m = retrieval_metrics(rng.normal(size=(2000, 20)), rng.integers(0, 20, size=2000))
    assert abs(m["t2v_r1"] - 1 / 20) < 0.02


GROUPS = ["v0", "v0", "v0", "v1", "v1", "v2", "v2", "v3", "v4", "v4", "v5"]


@pytest.mark.parametrize("mode", ["random", "group", "separate"])
def test_caption_batches_cover_every_index_once(mode):
    batches = caption_batches(GROUPS, 3, mode, seed=1)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(GROUPS)))
    assert all(len(b) == 3 for b in batches[:-1])


def test_separate_keeps_captions_of_one_video_apart():
    for seed in range(5):
        for batch in caption_batches(GROUPS, 3, "separate", seed=seed):
            keys = [GROUPS[i] for i in batch]
            assert len(set(keys)) == len(keys), (seed, keys)


def test_group_puts_captions_of_one_video_side_by_side():
    order = [i for b in caption_batches(GROUPS, 4, "group", seed=3) for i in b]
    keys = [GROUPS[i] for i in order]
    runs = [k for j, k in enumerate(keys) if j == 0 or keys[j - 1] != k]
    assert len(runs) == len(set(GROUPS))  # each video's captions form one contiguous run
    # random mode, by contrast, splits some video's captions on most seeds
    split = sum(
        len([k for j, k in enumerate(ks) if j == 0 or ks[j - 1] != k]) > len(set(GROUPS))
        for ks in ([GROUPS[i] for b in caption_batches(GROUPS, 4, "random", seed=s) for i in b] for s in range(5))
    )
    assert split >= 4


def test_sampler_reshuffles_per_epoch():
    sampler = CaptionBatchSampler(GROUPS, 3, "group", seed=0)
    first, second = list(sampler), list(sampler)
    assert sorted(first) == sorted(second) == list(range(len(GROUPS))) and first != second
    sampler.set_epoch(0)
    assert list(sampler) == first and len(sampler) == len(GROUPS)


def test_visual_token_mask_drops_stop_words_punctuation_and_specials():
    text = "The red square is on the left."
    # offsets of: <start> the red square is on the left . <end>
    offsets = [(0, 0), (0, 3), (4, 7), (8, 14), (15, 17), (18, 20), (21, 24), (25, 29), (29, 30), (0, 0)]
    assert visual_token_mask(text, offsets, DEFAULT_STOP_WORDS) == [0, 0, 1, 1, 0, 0, 0, 1, 0, 0]
    assert visual_token_mask(text, offsets, frozenset()) == [0, 1, 1, 1, 1, 1, 1, 1, 0, 0]


def test_stop_word_file(tmp_path):
    path = tmp_path / "stop.txt"
    path.write_text("# abstract words\nGame\nbegin\n", encoding="utf-8")
    assert load_stop_words(str(path)) == frozenset({"game", "begin"})
    assert load_stop_words(None) is DEFAULT_STOP_WORDS


def test_normalise_captions():
    assert normalise_captions(["a", " ", "b "]) == (["a", "b"], "")
    assert normalise_captions("one") == (["one"], "")
    assert normalise_captions([])[1].startswith("empty caption list")
    assert normalise_captions(None)[1]
    assert "not a string" in normalise_captions(3)[1]


def test_recall_curve_and_plot(tmp_path):
    import numpy as np

    from llamafactory_video.metrics.plots import plot_recall_curves
    from llamafactory_video.metrics.retrieval import rank_summary, recall_curve, retrieval_ranks

    rng = np.random.default_rng(0)
    similarity = rng.normal(size=(8, 4))
    caption_to_video = [0, 0, 1, 1, 2, 2, 3, 3]
    ranks = retrieval_ranks(similarity, caption_to_video)
    curve = recall_curve(ranks["text->video"], 4)
    naive = [sum(r <= k for r in ranks["text->video"]) / 8 for k in range(1, 5)]
    np.testing.assert_allclose(curve, naive)
    assert curve[-1] == 1.0 and np.all(np.diff(curve) >= 0)
    summary = rank_summary(ranks["text->video"], ks=(1,))
    assert curve[0] == summary["r1"]
    path = plot_recall_curves(ranks, {"text->video": 4, "video->text": 8}, str(tmp_path / "curve.png"))
    assert (tmp_path / "curve.png").stat().st_size > 1000 and path.endswith("curve.png")


def test_chance_recall_curve_matches_a_simulation():
    import numpy as np

    from llamafactory_video.metrics.retrieval import chance_recall_curve, ranks_of_positives, recall_curve

    rng = np.random.default_rng(1)
    n, p, trials = 10, 3, 20000
    positives = np.zeros((trials, n), dtype=bool)
    positives[:, :p] = True
    ranks = ranks_of_positives(rng.random((trials, n)), positives)
    np.testing.assert_allclose(recall_curve(ranks, n), chance_recall_curve(n, [p]), atol=0.015)
    np.testing.assert_allclose(chance_recall_curve(n, [1]), np.arange(1, n + 1) / n)
