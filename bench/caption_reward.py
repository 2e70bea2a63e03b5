#!/usr/bin/env python
"""CIDEr-D reward: our ``CiderDScorer`` (df precomputed over the training references, reference vectors cached,
batch vectorised) against pycocoevalcap's ``Cider().compute_score`` on the same batches of candidates.

MSR-VTT-like synthetic data, built from a vocabulary made here (no download): ``--videos`` training videos with
``--refs`` references each, captions of 8-12 words; every video has a topic (subject, action, object, place) that
its references paraphrase, with Zipf-distributed modifiers, so n-gram document frequencies look like a real
caption corpus. A batch holds ``B`` candidates (sampled captions of ``B`` random training videos).

Three timings per batch size, interleaved in random order within each repetition:

* ``ours``: ``scorer.score(candidates, keys)`` on the scorer built once over the whole training corpus (its build
  time is reported once, under ``setup``);
* ``pycocoevalcap``: ``Cider().compute_score(gts, res)`` on the batch (df recomputed from the batch's references,
  every reference vector rebuilt for every call);
* ``ours_batch_df``: ``CiderDScorer(batch refs).score(...)``, construction included: the SAME numbers as
  pycocoevalcap (checked: ``max_abs_diff_vs_pycocoevalcap``), to separate caching from vectorisation.

Median and spread over ``--reps`` repetitions; ratios are pycocoevalcap / ours (higher = we are faster). No
timing assertions anywhere.

    python bench/caption_reward.py [--quick] [--videos 2000 --refs 20 --reps 7] [--output FILE]
"""

import argparse
import datetime
import json
import os
import platform
import random
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT = os.path.join(HERE, "results", "caption_reward_cpu.json")

# ------------------------------------------------------------------------------------------------ vocabulary
SUBJECTS = """man woman girl boy kid baby chef singer dancer player team crowd reporter host teacher student driver
cat dog horse bird character cartoon robot soldier couple family band athlete cyclist swimmer gamer""".split()
ADJECTIVES = """young old little small big tall funny animated blue red black white green happy angry beautiful
professional famous loud fast slow cute""".split()
ACTIONS = """cooking playing singing talking dancing running riding driving eating drinking explaining showing
fixing painting drawing swimming jumping fighting walking watching reading writing throwing catching
cutting mixing building climbing shooting kicking""".split()
OBJECTS = """guitar piano food pasta soup cake ball football basketball car bike horse phone computer game song
video news weather map book picture table kitchen dish knife hair makeup toy puzzle board""".split()
PLACES = """kitchen stage field street park beach studio room car restaurant gym pool forest road court classroom
office market garden""".split()
PREPOSITIONS = ["in", "on", "at", "near", "inside", "outside"]
ADVERBS = ["quickly", "slowly", "happily", "loudly", "carefully", "together", "again", "well"]


def build_vocabulary() -> list[str]:
    """Every word the generator can emit (reported in the results)."""
    words = {"a", "the", "is", "are", "and", "with", "while", "of", "to", "his", "her", "their", "some", "two"}
    for group in (SUBJECTS, ADJECTIVES, ACTIONS, OBJECTS, PLACES, PREPOSITIONS, ADVERBS):
        words.update(group)
    return sorted(words)


def _zipf(rng: random.Random, items: list[str], s: float = 1.1) -> str:
    weights = [1.0 / (rank + 1) ** s for rank in range(len(items))]
    return rng.choices(items, weights)[0]


def make_topic(rng: random.Random) -> dict:
    return {
        "subject": _zipf(rng, SUBJECTS),
        "action": _zipf(rng, ACTIONS),
        "object": _zipf(rng, OBJECTS),
        "place": _zipf(rng, PLACES),
        "alt_subject": rng.choice(SUBJECTS),
    }


def make_caption(rng: random.Random, topic: dict) -> str:
    """One 8-12 word caption about ``topic`` (lower-case, tokenised)."""
    subject = topic["subject"] if rng.random() < 0.8 else topic["alt_subject"]
    words = [rng.choice(["a", "the"])]
    if rng.random() < 0.5:
        words.append(_zipf(rng, ADJECTIVES))
    words += [subject, "is", topic["action"] if rng.random() < 0.85 else _zipf(rng, ACTIONS)]
    words += [rng.choice(["a", "the", "some", "his", "her"])]
    if rng.random() < 0.4:
        words.append(_zipf(rng, ADJECTIVES))
    words.append(topic["object"] if rng.random() < 0.8 else _zipf(rng, OBJECTS))
    words += [rng.choice(PREPOSITIONS), "the", topic["place"] if rng.random() < 0.8 else _zipf(rng, PLACES)]
    while len(words) < 8:
        words.append(rng.choice(ADVERBS))
    if len(words) < 12 and rng.random() < 0.5:
        words.append(rng.choice(ADVERBS))
    if len(words) <= 10 and rng.random() < 0.3:
        words += ["and", rng.choice(ADVERBS)]
    return " ".join(words[:12])


def make_corpus(num_videos: int, refs_per_video: int, seed: int = 0) -> tuple[dict, dict]:
    """``({video_id: [refs]}, {video_id: topic})``."""
    rng = random.Random(seed)
    refs, topics = {}, {}
    for i in range(num_videos):
        topic = make_topic(rng)
        topics[f"video{i}"] = topic
        refs[f"video{i}"] = [make_caption(rng, topic) for _ in range(refs_per_video)]
    return refs, topics


# ------------------------------------------------------------------------------------------------ timing helpers
def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(values: list[float]) -> dict:
    return {
        "n": len(values),
        "median": statistics.median(values),
        "p10": percentile(values, 10),
        "p90": percentile(values, 90),
        "min": min(values),
        "max": max(values),
        "stdev": statistics.stdev(values) if len(values) > 1 else 0.0,
        "values": [round(v, 6) for v in values],
    }


def machine_info() -> dict:
    import numpy

    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python_version": platform.python_version(),
        "numpy_version": numpy.__version__,
        "device": "cpu",
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


# ------------------------------------------------------------------------------------------------ main
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small corpus, one repetition (~10 s)")
    parser.add_argument("--videos", type=int, default=None, help="training videos (default 2000; quick 600)")
    parser.add_argument("--refs", type=int, default=20, help="references per video (MSR-VTT: 20)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32, 128, 512])
    parser.add_argument("--reps", type=int, default=None, help="repetitions per batch size (default 7; quick 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    args.videos = args.videos or (600 if args.quick else 2000)
    args.reps = args.reps or (1 if args.quick else 7)
    if args.videos < max(args.batch_sizes):
        parser.error("--videos must be at least the largest batch size")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import numpy as np
    from pycocoevalcap.cider.cider import Cider

    from llamafactory_video.rewards import CiderDScorer

    started = time.time()
    corpus, topics = make_corpus(args.videos, args.refs, args.seed)
    t0 = time.perf_counter()
    scorer = CiderDScorer(corpus)
    build_s = time.perf_counter() - t0
    rng = random.Random(args.seed + 1)
    print(
        f"corpus: {args.videos} videos x {args.refs} refs, {len(build_vocabulary())}-word vocabulary; "
        f"scorer built in {build_s:.2f} s; {len(scorer.document_frequency)} distinct n-grams"
    )

    batches = {}
    for size in args.batch_sizes:
        times = {"ours": [], "pycocoevalcap": [], "ours_batch_df": []}
        max_diff = 0.0
        for _ in range(args.reps):
            keys = rng.sample(list(corpus), size)
            candidates = [make_caption(rng, topics[k]) for k in keys]
            gts = {i: corpus[k] for i, k in enumerate(keys)}
            res = {i: [c] for i, c in enumerate(candidates)}
            results = {}
            for name in rng.sample(list(times), len(times)):
                t0 = time.perf_counter()
                if name == "ours":
                    results[name] = scorer.score(candidates, keys)
                elif name == "pycocoevalcap":
                    results[name] = Cider().compute_score(gts, res)[1]
                else:
                    results[name] = CiderDScorer(gts).score(candidates, list(range(size)))
                times[name].append(time.perf_counter() - t0)
            max_diff = max(max_diff, float(np.abs(results["ours_batch_df"] - results["pycocoevalcap"]).max()))
        summary = {f"{name}_s": summarize(values) for name, values in times.items()}
        ours, coco, batch_df = (summary[f"{n}_s"]["median"] for n in ("ours", "pycocoevalcap", "ours_batch_df"))
        batches[str(size)] = {
            **summary,
            "ratio_pycocoevalcap_over_ours": coco / ours,
            "ratio_pycocoevalcap_over_ours_batch_df": coco / batch_df,
            "ours_us_per_candidate": ours / size * 1e6,
            "pycocoevalcap_us_per_candidate": coco / size * 1e6,
            "max_abs_diff_vs_pycocoevalcap": max_diff,
        }

    results = {
        "benchmark": "caption_reward",
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python bench/caption_reward.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine_info(),
        "settings": {
            "quick": args.quick,
            "videos": args.videos,
            "refs_per_video": args.refs,
            "batch_sizes": args.batch_sizes,
            "reps": args.reps,
            "seed": args.seed,
            "caption_words": [8, 12],
            "n": 4,
            "sigma": 6.0,
        },
        "setup": {
            "scorer_build_s": build_s,
            "vocabulary_size": len(build_vocabulary()),
            "distinct_ngrams": len(scorer.document_frequency),
        },
        "batches": batches,
        "wall_s": time.time() - started,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
        f.write("\n")

    header = (
        f"{'batch':>6} {'ours ms':>10} {'(p10-p90)':>17} {'pycocoevalcap ms':>17} {'(p10-p90)':>19} "
        f"{'ratio':>7} {'batch-df ms':>12} {'ratio':>7} {'max |diff|':>11}"
    )
    print(header)
    for size, row in batches.items():
        o, c, b = row["ours_s"], row["pycocoevalcap_s"], row["ours_batch_df_s"]
        print(
            f"{size:>6} {o['median'] * 1e3:>10.2f} {o['p10'] * 1e3:>8.2f}-{o['p90'] * 1e3:<8.2f} "
            f"{c['median'] * 1e3:>17.1f} {c['p10'] * 1e3:>9.1f}-{c['p90'] * 1e3:<9.1f} "
            f"{row['ratio_pycocoevalcap_over_ours']:>6.1f}x {b['median'] * 1e3:>12.2f} "
            f"{row['ratio_pycocoevalcap_over_ours_batch_df']:>6.1f}x {row['max_abs_diff_vs_pycocoevalcap']:>11.1e}"
        )
    print(
        "ratio = pycocoevalcap median / ours median; batch-df = our scorer built on the batch (same numbers as "
        "pycocoevalcap), construction included"
    )
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
