"""Caption metrics and rewards against pycocoevalcap 1.2 on several hundred deterministic, real-looking captions.

BLEU, ROUGE-L and CIDEr-D of ``metrics.captions`` replay pycocoevalcap's arithmetic in the same order, so they are
compared with exact equality; the vectorised ``CiderDScorer`` sums in another order (abs 1e-9). METEOR starts Java
once per test process (shared by every test that needs it); without Java those tests are skipped with the reason.
"""

import json
import math
import random
import shutil

import numpy as np
import pytest

pytest.importorskip("pycocoevalcap")

from pycocoevalcap.bleu.bleu import Bleu  # noqa: E402
from pycocoevalcap.cider.cider import Cider  # noqa: E402
from pycocoevalcap.rouge.rouge import Rouge  # noqa: E402

from llamafactory_video.cli import main  # noqa: E402
from llamafactory_video.metrics import captions as cm  # noqa: E402
from llamafactory_video.rewards import CiderDScorer, bleu4  # noqa: E402

JAVA = shutil.which("java")
NO_JAVA = "METEOR / PTBTokenizer need Java: 'java' is not on PATH"

SUBJECTS = [
    "a man",
    "a woman",
    "a girl",
    "a boy",
    "a little kid",
    "a chef",
    "a dog",
    "a singer",
    "someone",
    "a reporter",
    "the host",
    "an animated cat",
    "a cartoon character",
    "a teenager",
    "a person",
]
SUBJECTS_PL = ["two men", "people", "the players", "a group of people", "kids", "some girls", "the dancers"]
VERBS = [
    "cooking",
    "playing",
    "singing",
    "talking about",
    "showing",
    "driving",
    "dancing with",
    "explaining",
    "riding",
    "holding",
    "watching",
    "fixing",
    "reviewing",
    "throwing",
    "eating",
]
OBJECTS = [
    "a guitar",
    "some food",
    "a car",
    "the ball",
    "a video game",
    "pasta",
    "the news",
    "a song",
    "a horse",
    "a new phone",
    "the field",
    "a cake",
    "a basketball",
    "a puzzle",
    "a bike",
    "the weather",
    "a toy",
]
PLACES = [
    "in a kitchen",
    "on a stage",
    "on the field",
    "in a car",
    "in a studio",
    "outside",
    "at a party",
    "in front of a crowd",
    "on tv",
    "in a cartoon",
    "on the street",
    "in the rain",
    "at the beach",
]
ADVERBS = ["quickly", "happily", "loudly", "slowly", "together", "carefully", "again"]
SHORT = ["a man", "people", "", "a", "cooking", "a man a man a man", "the the the the", "video"]


def make_caption(rng: random.Random) -> str:
    plural = rng.random() < 0.3
    words = [rng.choice(SUBJECTS_PL if plural else SUBJECTS), "are" if plural else "is", rng.choice(VERBS)]
    if not words[-1].endswith(("about", "with")) or rng.random() < 0.9:
        words.append(rng.choice(OBJECTS))
    if rng.random() < 0.6:
        words.append(rng.choice(PLACES))
    if rng.random() < 0.3:
        words.append(rng.choice(ADVERBS))
    if rng.random() < 0.05:
        words = words[:2]  # "a man is"
    return " ".join(words)


def make_corpus(num: int, seed: int = 0):
    """``(gts, res)`` in pycocoevalcap's format: 1..20 references per video; ~10% candidates copy a reference,
    ~10% are short or empty, the rest are fresh template captions (so partial overlaps dominate)."""
    rng = random.Random(seed)
    gts, res = {}, {}
    for i in range(num):
        refs = [make_caption(rng) for _ in range(rng.randint(1, 20))]
        r = rng.random()
        if r < 0.1:
            hyp = rng.choice(refs)
        elif r < 0.2:
            hyp = rng.choice(SHORT)
        else:
            hyp = make_caption(rng)
        gts[f"video{i}"] = refs
        res[f"video{i}"] = [hyp]
    return gts, res


@pytest.fixture(scope="module")
def corpus():
    return make_corpus(400)


@pytest.fixture(scope="module")
def coco(corpus):
    """pycocoevalcap's ``(corpus score, per-sentence scores)`` on the corpus, computed once."""
    gts, res = corpus
    return {
        "bleu": Bleu(4).compute_score(gts, res, verbose=0),
        "rouge": Rouge().compute_score(gts, res),
        "cider": Cider().compute_score(gts, res),
    }


# ------------------------------------------------------------------------------------------------ exactness
def test_bleu_equals_pycocoevalcap(corpus, coco):
    gts, res = corpus
    expected, expected_per = coco["bleu"]
    ours, ours_per = cm.bleu(gts, res, 4)
    assert ours.shape == (4,) and ours_per.shape == (4, len(gts))
    np.testing.assert_array_equal(ours, np.array(expected))
    np.testing.assert_array_equal(ours_per, np.array(expected_per))


def test_rouge_l_equals_pycocoevalcap(corpus, coco):
    gts, res = corpus
    expected, expected_per = coco["rouge"]
    ours, ours_per = cm.rouge_l(gts, res)
    assert ours == expected
    np.testing.assert_array_equal(ours_per, expected_per)


def test_cider_d_equals_pycocoevalcap(corpus, coco):
    gts, res = corpus
    expected, expected_per = coco["cider"]
    ours, ours_per = cm.cider_d(gts, res)
    assert ours == expected
    np.testing.assert_array_equal(ours_per, expected_per)
    assert ours_per.max() > 5  # copies of a reference score high, so the comparison covers the whole range


def test_corpus_covers_edge_cases(corpus):
    gts, res = corpus
    hyps = [h[0] for h in res.values()]
    assert "" in hyps and sum(h in SHORT for h in hyps) >= 20
    assert sum(h[0] in gts[k] for k, h in res.items()) >= 30
    assert {len(r) for r in gts.values()} >= {1, 20}


def test_bleu_closest_reference_length_and_bare_string_candidates():
    gts = {"a": ["a man is cooking food in a kitchen", "a man cooks"], "b": ["a dog", "the dog runs"]}
    res = {"a": "a man is cooking", "b": ["a dog runs"]}
    expected, expected_per = Bleu(4).compute_score(
        gts, {k: [v] if isinstance(v, str) else v for k, v in res.items()}, verbose=0
    )
    ours, ours_per = cm.bleu(gts, res)
    np.testing.assert_array_equal(ours, expected)
    np.testing.assert_array_equal(ours_per, expected_per)
    with pytest.raises(ValueError, match="same keys"):
        cm.bleu(gts, {"a": ["x"]})


# ------------------------------------------------------------------------------------------------ tokeniser
PTB_PINNED = [  # outputs of pycocoevalcap's PTBTokenizer (Stanford CoreNLP 3.4.1 jar)
    ("A man is cooking.", "a man is cooking"),
    ("Don't stop (please) now!", "do n't stop -lrb- please -rrb- now"),
    ("The dog's ball -- it's red; isn't it?", "the dog 's ball it 's red is n't it"),
    ("1/2 of the U.S. cars cost $1,000.", "1/2 of the u.s. cars cost $ 1,000"),
    ("\"Quoted\" text and 'single' quotes...", "quoted text and single quotes"),
    ("well-known a.m. 3:30 pm", "well-known a.m. 3:30 pm"),
    ("cats' toys", "cats toys"),
    ("we're they'll I've I'm he'd", "we 're they 'll i 've i 'm he 'd"),
    ("[brackets] {braces}", "-lsb- brackets -rsb- -lcb- braces -rcb-"),
    ("cannot gonna wanna", "can not gon na wan na"),
    ("Mr. Smith and Dr. Who", "mr. smith and dr. who"),
    ("50% off", "50 % off"),
    ("hello!!! ?! ok?!", "hello !!! ?! ok ?!"),
    ("5. wait,what a,b a;b a:b a!b a?b", "5 wait what a b a b a b a!b a?b"),
    ("can't won't ain't", "ca n't wo n't ai n't"),
    ("\u201cunicode\u201d \u2018quotes\u2019 it\u2019s em\u2014dash", "unicode quotes it 's em dash"),
    ("the 1990's, o'clock", "the 1990 's o'clock"),
    ("a.b x.y.z e.g. no. 5", "a.b x.y.z e.g. no. 5"),
    ("-word word- x--y", "word word x y"),
    ("A MAN IS SINGING\nloudly", "a man is singing loudly"),
    ("...", ""),
    ("", ""),
]


@pytest.mark.parametrize("raw,expected", PTB_PINNED)
def test_tokenize_matches_pinned_ptb_outputs(raw, expected):
    assert cm.tokenize(raw) == expected


def _noisy(rng: random.Random, text: str) -> str:
    words = text.split()
    if rng.random() < 0.5:
        words[0] = words[0].capitalize()
    if rng.random() < 0.2:
        i = rng.randrange(len(words))
        words[i] += ","
    if rng.random() < 0.15 and "is" in words[1:]:
        i = words.index("is", 1)
        words[i - 1] += "'s"
        del words[i]
    if rng.random() < 0.1:
        i = rng.randrange(len(words))
        words[i] = rng.choice(['"{}"', "({})", "'{}'"]).format(words[i])
    if rng.random() < 0.15:
        words.insert(
            rng.randrange(len(words)),
            rng.choice(
                ["can't", "isn't", "they're", "3-d", "1,000", "2.5", "u.s.", "mr.", "$5", "50%", "--", "-", ";", ":"]
            ),
        )
    if rng.random() < 0.1:
        words = [w.upper() for w in words]
    return " ".join(words) + rng.choice(["", "", ".", ".", "!", "?", " .", "...", "!!"])


@pytest.mark.skipif(JAVA is None, reason=NO_JAVA)
def test_tokenize_matches_the_ptb_jar_on_noisy_captions():
    rng = random.Random(3)
    raw = {i: [_noisy(rng, make_caption(rng))] for i in range(300)}
    jar = cm.ptb_tokenize_corpus(raw)
    ours = cm.tokenize_corpus(raw)
    mismatches = [(raw[i][0], jar[i][0], ours[i][0]) for i in raw if jar[i] != ours[i]]
    assert not mismatches, mismatches[:5]


# ------------------------------------------------------------------------------------------------ METEOR
@pytest.mark.skipif(JAVA is None, reason=NO_JAVA)
def test_meteor_through_pycocoevalcap(corpus):
    gts, res = corpus
    keys = list(gts)[:60]
    sub_gts, sub_res = {k: gts[k] for k in keys}, {k: res[k] for k in keys}
    score, per = cm.meteor(sub_gts, sub_res)
    assert per.shape == (60,) and 0 < score < 1 and np.all((per >= 0) & (per <= 1))
    copies = [i for i, k in enumerate(keys) if res[k][0] in gts[k] and res[k][0]]
    assert copies and np.all(per[copies] > 0.9)
    empties = [i for i, k in enumerate(keys) if res[k][0] == ""]
    assert np.all(per[empties] == 0)
    assert score != pytest.approx(per.mean(), abs=1e-6)  # corpus METEOR pools statistics; not the mean


@pytest.mark.skipif(JAVA is None, reason=NO_JAVA)
def test_meteor_jar_that_does_not_answer_fails_and_the_next_call_works(corpus, monkeypatch):
    # pycocoevalcap's Meteor keeps its lock when the jar fails and then waits on it forever in __del__ (a hang);
    # ours gives up at its deadline, stops the jar, and starts a new one on the next call
    gts, res = corpus
    keys = list(gts)[:5]
    sub_gts, sub_res = {k: gts[k] for k in keys}, {k: res[k] for k in keys}
    monkeypatch.setattr(cm, "METEOR_TIMEOUT_S", 0.0)
    with pytest.raises(cm.MetricUnavailable, match="no answer from the METEOR jar"):
        cm.meteor(sub_gts, sub_res)
    assert cm._METEOR is None
    monkeypatch.setattr(cm, "METEOR_TIMEOUT_S", 300.0)
    score, per = cm.meteor(sub_gts, sub_res)
    assert per.shape == (5,) and 0 <= score <= 1


def test_meteor_without_java_raises_metric_unavailable(monkeypatch):
    monkeypatch.setattr(cm.shutil, "which", lambda name: None)
    assert "java" in cm.meteor_available().lower()
    with pytest.raises(cm.MetricUnavailable, match="Java"):
        cm.meteor({"a": ["a man"]}, {"a": ["a man"]})


# ------------------------------------------------------------------------------------------------ reward scorer
def test_scorer_equals_pycocoevalcap_when_df_is_the_batch(corpus, coco):
    gts, res = corpus
    _, expected = coco["cider"]
    scorer = CiderDScorer(gts)  # df over exactly the documents pycocoevalcap sees
    ours = scorer.score([res[k][0] for k in gts], list(gts))
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-9)
    # pycocoevalcap's document frequencies, n-gram for n-gram
    df, num_docs = cm.document_frequency(gts.values())
    assert scorer.document_frequency == df and scorer.num_documents == num_docs == len(gts)


def test_scorer_keys_by_position_and_repeated_keys():
    gts, res = make_corpus(30, seed=5)
    refs = list(gts.values())
    scorer = CiderDScorer(refs)  # plain iterable: cached under positions 0..29
    cands = [h[0] for h in res.values()]
    by_position = scorer.score(cands, list(range(30)))
    np.testing.assert_allclose(by_position, Cider().compute_score(gts, res)[1], atol=1e-9)
    # 3 samples per video, shuffled: each candidate only depends on its own key
    order = [i for i in range(30) for _ in range(3)]
    random.Random(0).shuffle(order)
    np.testing.assert_allclose(scorer([cands[i] for i in order], order), by_position[order], atol=1e-12)
    with pytest.raises(KeyError, match="no references cached"):
        scorer.score(["a man"], ["nope"])
    with pytest.raises(ValueError, match="2 keys"):
        scorer.score(["a man"], [0, 1])


# The training corpus of the hand-computed case: four videos, one reference each.
HAND_CORPUS = {
    "v1": ["a man is cooking"],
    "v2": ["a man is running"],
    "v3": ["a woman is singing"],
    "v4": ["a dog is running"],
}


def test_scorer_with_training_df_hand_computed():
    r"""``"a man is running"`` against v1's ``"a man is cooking"`` with df over the 4 training videos (N = 4).

    idf = ln 4 - ln df: a, is -> 0; man, running -> ln 2; cooking -> 2 ln 2. Cosines with clipping (ln 2 cancels):
    1-grams (0,1,0,1)/(0,1,0,2): 1/sqrt(10); 2-grams {a man, man is, is running}(1,1,1) vs (1,1,2): 2/sqrt(18);
    3-grams (1,2) vs (1,2) sharing only "a man is": 1/5; 4-grams: 0. Same length -> no penalty, one reference:
    CIDEr-D = 10 * (1/sqrt(10) + 2/sqrt(18) + 1/5 + 0) / 4.
    """
    scorer = CiderDScorer(HAND_CORPUS)
    expected = 10 * (1 / math.sqrt(10) + 2 / math.sqrt(18) + 1 / 5 + 0) / 4
    assert scorer.score(["a man is running"], ["v1"])[0] == pytest.approx(expected, abs=1e-12)
    assert scorer.score(["a man is cooking"], ["v1"])[0] == pytest.approx(10.0, abs=1e-12)  # a copy: cosine 1
    # one word longer: the Gaussian length penalty exp(-1/72) on every order; "quickly" (df 0) gets idf ln 4
    longer = scorer.score(["a man is cooking quickly"], ["v1"])[0]
    assert 0 < longer < 10 * math.exp(-1 / 72)


def test_training_df_differs_from_per_batch_df_in_the_expected_way():
    cand = "a man is running"
    # pycocoevalcap on the batch {v1, v2}: N = 2 and "a", "man", "is", "a man", "man is", "a man is" occur in both
    # documents -> idf 0; what is left ("running" vs "cooking") never matches -> exactly 0
    batch_gts = {"v1": HAND_CORPUS["v1"], "v2": HAND_CORPUS["v2"]}
    _, per_batch = Cider().compute_score(batch_gts, {"v1": [cand], "v2": [cand]})
    assert per_batch[0] == 0.0 and per_batch[1] == pytest.approx(10.0)
    assert CiderDScorer(batch_gts).score([cand, cand], ["v1", "v2"]) == pytest.approx(per_batch, abs=1e-12)
    # a batch of ONE video: N = 1, every idf is 0, even a perfect copy scores 0 in pycocoevalcap
    assert Cider().compute_score({"v1": HAND_CORPUS["v1"]}, {"v1": HAND_CORPUS["v1"]})[0] == 0.0
    # df from the training corpus: "man" is rarer than "a" / "is", so the partial match earns a reward, and the
    # reward of a candidate no longer depends on its batch-mates
    scorer = CiderDScorer(HAND_CORPUS)
    alone = scorer.score([cand], ["v1"])[0]
    assert alone == pytest.approx(10 * (1 / math.sqrt(10) + 2 / math.sqrt(18) + 1 / 5) / 4)
    with_others = scorer.score([cand, "a woman is singing", "a dog is running", cand], ["v1", "v3", "v4", "v2"])
    assert with_others[0] == alone and with_others[3] == pytest.approx(10.0)
    assert scorer.score(HAND_CORPUS["v1"], ["v1"])[0] == pytest.approx(10.0)


def test_add_references_keeps_the_training_df():
    scorer = CiderDScorer(HAND_CORPUS)
    before = scorer.score(["a man is running"], ["v1"])
    scorer.add_references("v5", ["a man is cooking"])  # same refs as v1, added after construction
    assert scorer.num_documents == 4 and len(scorer) == 5 and "v5" in scorer
    assert scorer.score(["a man is running", "a man is running"], ["v5", "v1"]) == pytest.approx([before[0]] * 2)
    scorer.add_references("v6", ["a robot is welding"])  # n-grams unseen in the corpus: idf = ln 4
    assert scorer.score(["a robot is welding"], ["v6"])[0] == pytest.approx(10.0)
    assert scorer.references("v6") == ["a robot is welding"]


def test_scorer_tokenize_option_and_empty_candidates():
    scorer = CiderDScorer(
        {"v1": ["A man is cooking."], "v2": ["A dog runs!"], "v3": ["Kids play."]}, tokenize=cm.tokenize
    )
    assert scorer.references("v1") == ["a man is cooking"]
    scores = scorer.score(["A MAN IS COOKING", "", "?"], ["v1", "v2", "v3"])
    assert scores[0] == pytest.approx(10.0) and scores[1] == 0.0 and scores[2] == 0.0
    assert scorer.score([], []).shape == (0,)
    # empty references / candidates, as pycocoevalcap handles them
    gts = {"a": ["", "a man is cooking"], "b": [""], "c": ["a dog"], "d": ["a dog runs", "a cat"]}
    res = {"a": ["a man"], "b": ["a dog"], "c": [""], "d": ["a dog runs"]}
    np.testing.assert_allclose(
        CiderDScorer(gts).score([res[k][0] for k in gts], list(gts)), Cider().compute_score(gts, res)[1], atol=1e-12
    )
    assert CiderDScorer({"x": [""]}).score(["a b", ""], ["x", "x"]).tolist() == [0.0, 0.0]


def test_bleu4_reward_equals_per_sentence_bleu4(corpus, coco):
    gts, res = corpus
    _, per = coco["bleu"]
    ours = bleu4([res[k][0] for k in gts], [gts[k] for k in gts])
    np.testing.assert_array_equal(ours, np.array(per[3]))


# ------------------------------------------------------------------------------------------------ CLI
def _write_inputs(tmp_path, corpus, num=40):
    gts, res = corpus
    keys = list(gts)[:num]
    groups_cycle = ["animation", "sports", "live action"]
    groups = {k: groups_cycle[i % 3] for i, k in enumerate(keys)}
    # raw-looking predictions: the CLI tokenises them with the builtin tokenizer
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"id": k, "caption": res[k][0].capitalize() + "!"}) + "\n" for k in keys))
    refs = tmp_path / "refs.json"
    refs.write_text(json.dumps({k: gts[k] for k in keys}))
    group_file = tmp_path / "groups.json"
    group_file.write_text(json.dumps(groups))
    return keys, preds, refs, group_file, groups


def _expected(corpus, keys, with_meteor):
    gts, res = corpus
    return cm.caption_metrics({k: gts[k] for k in keys}, {k: res[k] for k in keys}, with_meteor=with_meteor)


def test_eval_captions_jsonl_with_groups(tmp_path, corpus, capsys):
    keys, preds, refs, group_file, groups = _write_inputs(tmp_path, corpus)
    out = tmp_path / "out" / "scores.json"
    argv = [
        "eval-captions",
        "--predictions",
        str(preds),
        "--references",
        str(refs),
        "--groups",
        str(group_file),
        "--output",
        str(out),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    metric_keys = {"bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider"}
    assert metric_keys <= set(result) and set(result["groups"]) == {"animation", "sports", "live action"}
    assert result["prediction_format"] == "jsonl" and result["tokenizer"] == "builtin"
    with_meteor = JAVA is not None
    if not with_meteor:
        assert result["meteor"] is None and "METEOR skipped" in printed
    for name in ["overall", "animation", "sports", "live action"]:
        assert name in printed
        subset = keys if name == "overall" else [k for k in keys if groups[k] == name]
        got = result if name == "overall" else result["groups"][name]
        assert set(got) >= metric_keys and got["num_samples"] == len(subset)
        want = _expected(corpus, subset, with_meteor)
        for key in metric_keys:
            assert got[key] == (None if want[key] is None else pytest.approx(want[key], abs=1e-12)), (name, key)


def test_eval_captions_llamafactory_predictions(tmp_path, corpus, capsys, monkeypatch):
    monkeypatch.setattr(cm.shutil, "which", lambda name: None)  # no Java: METEOR is skipped with a message
    keys, _, _, _, groups = _write_inputs(tmp_path, corpus, num=12)
    gts, res = corpus
    preds = tmp_path / "generated_predictions.jsonl"
    preds.write_text(
        "".join(
            json.dumps({"prompt": "<video>Describe the video.", "predict": res[k][0], "label": gts[k][0]}) + "\n"
            for k in keys
        )
    )
    refs = tmp_path / "refs_by_line.json"
    refs.write_text(json.dumps({str(i): gts[k] for i, k in enumerate(keys)}))
    group_file = tmp_path / "groups_by_line.json"
    group_file.write_text(json.dumps({str(i): groups[k] for i, k in enumerate(keys)}))
    out = tmp_path / "scores.json"
    assert (
        main(
            [
                "eval-captions",
                "--predictions",
                str(preds),
                "--references",
                str(refs),
                "--groups",
                str(group_file),
                "--output",
                str(out),
                "--tokenizer",
                "none",
            ]
        )
        == 0
    )
    assert "METEOR skipped: METEOR needs Java" in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["prediction_format"] == "llamafactory" and result["meteor"] is None
    assert result["skipped"]["meteor"].startswith("METEOR needs Java")
    want = _expected(corpus, keys, with_meteor=False)
    assert result["cider"] == pytest.approx(want["cider"], abs=1e-12)
    sports = [k for k in keys if groups[k] == "sports"]
    assert result["groups"]["sports"]["bleu_4"] == pytest.approx(_expected(corpus, sports, False)["bleu_4"], abs=1e-12)
    assert all(g["meteor"] is None for g in result["groups"].values())


def test_eval_captions_reports_bad_inputs(tmp_path, capsys):
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"prompt": "x", "predict": "a man", "label": "a man"}\n')
    refs = tmp_path / "r.json"
    refs.write_text(json.dumps({"video0": ["a man"]}))
    assert main(["eval-captions", "--predictions", str(preds), "--references", str(refs), "--no-meteor"]) == 2
    err = capsys.readouterr().err
    assert "no reference" in err and "0-based line numbers" in err
    preds.write_text('{"id": "video0", "text": "a man"}\n')
    assert main(["eval-captions", "--predictions", str(preds), "--references", str(refs), "--no-meteor"]) == 2
    assert '"id" and "caption"' in capsys.readouterr().err


def test_eval_captions_reads_references_embedded_by_the_scst_stage(tmp_path, corpus, capsys, monkeypatch):
    monkeypatch.setattr(cm.shutil, "which", lambda name: None)
    gts, res = corpus
    keys = sorted(gts)[:10]
    groups = {k: ("sports" if i % 2 else "animation") for i, k in enumerate(keys)}
    preds = tmp_path / "eval_captions.jsonl"  # what `stage: scst` writes
    preds.write_text(
        "".join(
            json.dumps({"id": k, "caption": res[k][0], "references": gts[k], "category": groups[k]}) + "\n"
            for k in keys
        )
    )
    out = tmp_path / "scores.json"
    assert main(["eval-captions", "--predictions", str(preds), "--output", str(out), "--tokenizer", "none"]) == 0
    result = json.loads(out.read_text())
    assert result["cider"] == pytest.approx(_expected(corpus, keys, False)["cider"], abs=1e-12)
    assert set(result["groups"]) == {"sports", "animation"}
    preds.write_text(json.dumps({"id": "x", "caption": "a man"}) + "\n")
    assert main(["eval-captions", "--predictions", str(preds)]) == 2
    assert 'no "references" in the line; pass --references FILE' in capsys.readouterr().err
