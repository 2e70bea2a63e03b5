"""The family-independent half of scst's one vision pass (`model/families/visual_once.py`) against a naive loop:
rows with uneven placeholder counts (one with none), two placeholder kinds, deepstack levels over both."""

import pytest
import torch

from llamafactory_video.model.families.visual_once import EncodedVisual, embed_with_visual, repeat_encoded


IMAGE, VIDEO = 7, 9


def _batch():
    ids = torch.tensor([
        [1, VIDEO, VIDEO, VIDEO, 2, 3],
        [1, 2, 3, 4, 5, 6],
        [IMAGE, 1, VIDEO, IMAGE, VIDEO, 2],
    ])
    g = torch.Generator().manual_seed(0)
    video = torch.randn(5, 4, generator=g)  # 3 + 0 + 2 video tokens, row-major
    image = torch.randn(2, 4, generator=g)
    deepstack = [torch.randn(7, 4, generator=g) for _ in range(2)]  # every visual token, sequence order
    return ids, EncodedVisual({VIDEO: video, IMAGE: image}, deepstack)


def _naive(ids, encoded, repeats, embedding):
    r"""Row by row: the row's own features (counted from the start), its copies in a row, scattered one by one."""
    rows, deep_rows = [], [[] for _ in encoded.deepstack]
    used = {token: 0 for token in encoded.features}
    used_deep = 0
    for row in ids:
        mine = {}
        for token, values in encoded.features.items():
            n = int((row == token).sum())
            mine[token] = values[used[token]: used[token] + n]
            used[token] += n
        n_visual = int(sum((row == token).sum() for token in encoded.features))
        mine_deep = [level[used_deep: used_deep + n_visual] for level in encoded.deepstack]
        used_deep += n_visual
        for _ in range(repeats):
            embeds = embedding(row).clone()
            for token, values in mine.items():
                for j, position in enumerate((row == token).nonzero().flatten().tolist()):
                    embeds[position] = values[j]
            rows.append(embeds)
            for level, values in zip(deep_rows, mine_deep):
                level.append(values)
    return torch.stack(rows), [torch.cat(level) for level in deep_rows]


@pytest.mark.parametrize("repeats", [1, 3])
def test_repeated_features_equal_a_naive_loop(repeats):
    ids, encoded = _batch()
    embedding = torch.nn.Embedding(16, 4)
    repeated = repeat_encoded(encoded, ids, repeats)
    rep_ids = ids.repeat_interleave(repeats, dim=0)
    with torch.no_grad():
        got = embed_with_visual(embedding, rep_ids, repeated)
        want, want_deep = _naive(ids, encoded, repeats, embedding)
    torch.testing.assert_close(got, want)
    for level, expected in zip(repeated.deepstack, want_deep):
        torch.testing.assert_close(level, expected)


def test_mismatched_feature_count_is_refused():
    ids, encoded = _batch()
    encoded.features[VIDEO] = encoded.features[VIDEO][:4]
    with pytest.raises(ValueError, match="5 placeholder tokens .id 9. but 4 visual features"):
        embed_with_visual(torch.nn.Embedding(16, 4), ids, encoded)


def test_gradient_of_shared_features_is_the_sum_over_copies():
    ids, encoded = _batch()
    video = encoded.features[VIDEO].clone().requires_grad_(True)
    encoded.features[VIDEO] = video
    embeds = embed_with_visual(torch.nn.Embedding(16, 4), ids.repeat_interleave(3, 0), repeat_encoded(encoded, ids, 3))
    weights = torch.randn_like(embeds)
    (embeds * weights).sum().backward()
    mask = ids.repeat_interleave(3, 0) == VIDEO
    per_copy = weights[mask].view(-1, 4)  # row-major: row 0's 3 tokens x 3 copies, then row 2's 2 tokens x 3 copies
    want = torch.cat([per_copy[:9].view(3, 3, 4).sum(0), per_copy[9:].view(3, 2, 4).sum(0)])
    torch.testing.assert_close(video.grad, want)
