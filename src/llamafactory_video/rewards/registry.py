"""Rewards of the ``scst`` stage as named callables with weights (TRL style).

``scst_rewards: cider_d:0.7,bleu_4:0.3,length:1.0`` sums weighted terms; each name is a built-in
(:data:`BUILTIN_REWARDS`) or the import path of a user function, ``my_pkg.rewards:fn`` (weight after a last
``:``, 1.0 when left out: ``my_pkg.rewards:fn:0.5``). A user reward has the signature::

    def fn(completions: list[str], references: list[list[str]], **columns) -> list[float]:
        # completions: N decoded captions / answers (K samples of each video, sample-major)
        # references:  N lists with ALL the reference captions (answers) of the completion's sample
        # columns:     the sample's other columns, one list of N values each: sample_keys ("<dataset>#<row>"),
        #              category, and the stage's extra QA columns (answer, question) when the dataset has them;
        #              accept **columns so that new columns do not break the function
        return [...]  # N finite floats

Names are checked when the YAML is parsed (:func:`check_reward_spec`); a reward that raises, returns the wrong
number of values or a NaN / infinite value stops the run with the reward's name, the sample and the completion.
"""

import importlib
import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from . import builtin


BUILTIN_REWARDS: dict[str, str] = {
    "cider_d": "CIDEr-D against all references, document frequencies over the training references",
    "bleu_1": "per-sentence BLEU-1",
    "bleu_2": "per-sentence BLEU-2",
    "bleu_3": "per-sentence BLEU-3",
    "bleu_4": "per-sentence BLEU-4",
    "rouge_l": "per-sentence ROUGE-L",
    "meteor": "per-sentence METEOR 1.5 (needs Java)",
    "length": "-scst_length_slope * |words - scst_target_length| (the seed's -0.01 * |len - 32|)",
    "exact_match": "1 when the normalised answer equals a normalised reference",
    "option_accuracy": "1 when the chosen option letter is the right one (the `answer` column or first reference)",
    "format": "1 when the completion fully matches `scst_format_pattern`",
}
MONITORED = ("cider_d", "bleu_4")  # always computed for the logs (scst/cider_d, scst/bleu_4) on caption data


class RewardError(RuntimeError):
    r"""A reward raised, returned the wrong number of values, or a non-finite value."""


def _builtin_list() -> str:
    return ", ".join(BUILTIN_REWARDS)


def parse_reward_spec(spec: str) -> list[tuple[str, float]]:
    r"""``"cider_d:0.7,my.mod:fn:0.5,length"`` -> ``[("cider_d", 0.7), ("my.mod:fn", 0.5), ("length", 1.0)]``.

    Only the syntax is checked here (weights are numbers, at least one is non-zero, no name twice)."""
    terms: list[tuple[str, float]] = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, weight = part, 1.0
        head, sep, tail = part.rpartition(":")
        if sep:
            try:
                name, weight = head.strip(), float(tail)
            except ValueError:
                name, weight = part, 1.0  # `pkg.mod:fn` without a weight
        if not name:
            raise ValueError(f"`scst_rewards` entry `{part}` has no reward name; write e.g. `cider_d:1.0`.")
        if not math.isfinite(weight):
            raise ValueError(f"`scst_rewards` entry `{part}`: the weight must be a finite number.")
        if any(name == other for other, _ in terms):
            raise ValueError(f"`scst_rewards` names `{name}` twice; give each reward once with its weight.")
        terms.append((name, weight))
    if not terms or all(w == 0 for _, w in terms):
        raise ValueError(
            f"`scst_rewards` needs at least one reward with a non-zero weight, e.g. `cider_d:1.0`; built-ins: "
            f"{_builtin_list()}, or a function `my_pkg.rewards:fn`."
        )
    return terms


def load_user_reward(path: str) -> Callable[..., Any]:
    r"""The callable at ``module.path:attr`` (``attr`` may be dotted), with an error naming what is missing."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(
            f"`scst_rewards`: `{path}` is neither a built-in reward ({_builtin_list()}) nor an import path "
            "`my_pkg.rewards:fn`."
        )
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(
            f"`scst_rewards`: cannot import module `{module_name}` of reward `{path}` ({err}); is it on PYTHONPATH? "
            f"Built-in rewards: {_builtin_list()}."
        ) from err
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"`scst_rewards`: module `{module_name}` has no `{attr}` (reward `{path}`).")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"`scst_rewards`: `{path}` is not callable.")
    return obj


def log_name(name: str) -> str:
    r"""Metric name of a reward: the built-in's name, or the last part of a user function's import path."""
    return name.rpartition(":")[2].rpartition(".")[2] if ":" in name else name


def check_reward_spec(spec: str) -> list[tuple[str, float]]:
    r"""Parse ``spec`` and check every name (built-in, METEOR's Java, importable user function, distinct log
    names); the parsed terms, or ``ValueError`` naming the entry and listing the built-ins."""
    terms = parse_reward_spec(spec)
    seen: dict[str, str] = {}
    for name, _ in terms:
        if name == "meteor":
            from ..metrics.captions import meteor_available

            reason = meteor_available()
            if reason is not None:
                raise ValueError(f"`scst_rewards`: the `meteor` reward is not available here: {reason}.")
        elif name not in BUILTIN_REWARDS:
            if ":" not in name:
                raise ValueError(
                    f"`scst_rewards`: unknown reward `{name}`; built-ins: {_builtin_list()}, or a function given by "
                    "import path `my_pkg.rewards:fn` (docs/stages/scst.md, Rewards)."
                )
            load_user_reward(name)
        short = log_name(name)
        if short in seen:
            raise ValueError(f"`scst_rewards`: `{seen[short]}` and `{name}` would both log as `{short}`.")
        seen[short] = name
    return terms


@dataclass
class RewardTerm:
    name: str
    """As written in ``scst_rewards`` (built-in name or import path)."""
    weight: float
    fn: Callable[..., Any]
    """``fn(completions, references, **columns)``."""

    @property
    def log_name(self) -> str:
        return log_name(self.name)


def builtin_reward(
    name: str, scorer: Any = None, length_target: int = 32, length_slope: float = 0.01, format_pattern: str = ""
) -> Callable[..., Any]:
    r"""The callable of a built-in reward (CIDEr-D needs the training corpus's ``scorer``)."""
    if name == "cider_d":
        if scorer is None:
            raise ValueError("the cider_d reward needs a CIDEr-D scorer built over the training references")

        def cider_d(completions, references, sample_keys=None, **_):
            keys = sample_keys if sample_keys is not None else [f"#{i}" for i in range(len(completions))]
            for key, refs in zip(keys, references):
                if key not in scorer:  # eval videos, or keys the corpus did not cover: df stays the training one
                    scorer.add_references(key, list(refs))
            return scorer.score(list(completions), list(keys))

        return cider_d
    if name.startswith("bleu_"):
        n = int(name[-1])
        return lambda completions, references, **_: builtin.bleu_n(completions, references, n)
    if name == "length":
        return lambda completions, references, **_: builtin.length_reward(completions, length_target, length_slope)
    if name == "format":
        pattern = format_pattern or builtin.DEFAULT_FORMAT
        return lambda completions, references, **_: builtin.format_reward(completions, pattern)
    table = {
        "rouge_l": builtin.rouge_l_reward,
        "meteor": builtin.meteor_reward,
        "exact_match": builtin.exact_match,
        "option_accuracy": builtin.option_accuracy,
    }
    return table[name]


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


class RewardSet:
    r"""``reward_i = sum_m w_m * reward_m(completion_i, references_i, columns_i)`` over the terms.

    ``__call__`` returns ``(total (N,), parts)``: ``parts`` maps each term's log name to its unweighted values
    ``(N,)`` and, on caption data (a CIDEr-D ``scorer``), always holds ``cider_d`` and ``bleu_4`` for the logs.
    """

    def __init__(self, terms: Sequence[RewardTerm], monitor: Optional[dict[str, Callable[..., Any]]] = None):
        self.terms = list(terms)
        self.monitor = dict(monitor or {})

    @property
    def names(self) -> list[str]:
        return [term.log_name for term in self.terms]

    def _run(self, name: str, fn: Callable[..., Any], completions, references, columns, keys) -> np.ndarray:
        n = len(completions)
        try:
            values = fn(list(completions), [list(r) for r in references], **columns)
        except Exception as err:
            # find the first sample the reward fails on, so the message can name it
            for i in range(n):
                one = {k: [v[i]] for k, v in columns.items()}
                try:
                    fn([completions[i]], [list(references[i])], **one)
                except Exception:
                    raise RewardError(
                        f"reward `{name}` raised {type(err).__name__}: {err} on sample `{keys[i]}`, completion "
                        f"{_short(completions[i])!r}"
                    ) from err
            raise RewardError(
                f"reward `{name}` raised {type(err).__name__}: {err} on a batch of {n} completions (samples "
                f"{', '.join(map(str, list(dict.fromkeys(keys))[:8]))}; each alone passes)"
            ) from err
        try:
            values = np.asarray(values, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as err:
            raise RewardError(f"reward `{name}` must return N floats, got {type(values).__name__}: {err}") from err
        if values.shape[0] != n:
            raise RewardError(
                f"reward `{name}` returned {values.shape[0]} values for {n} completions (samples "
                f"{', '.join(map(str, list(dict.fromkeys(keys))[:8]))}); it must return one float per completion"
            )
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            listed = "; ".join(
                f"sample `{keys[i]}`, completion {_short(completions[i])!r} -> {values[i]}" for i in bad[:5]
            )
            raise RewardError(f"reward `{name}` is not finite for {bad.size} completion(s): {listed}")
        return values

    def __call__(
        self,
        completions: Sequence[str],
        keys: Sequence[Hashable],
        references: Sequence[Sequence[str]],
        columns: Optional[dict[str, Sequence[Any]]] = None,
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        n = len(completions)
        if len(keys) != n or len(references) != n:
            raise ValueError(f"{n} completions, {len(keys)} keys, {len(references)} reference lists")
        columns = {k: list(v) for k, v in (columns or {}).items()}
        columns["sample_keys"] = list(keys)
        total = np.zeros(n, dtype=np.float64)
        parts: dict[str, np.ndarray] = {}
        for term in self.terms:
            values = self._run(term.name, term.fn, completions, references, columns, keys)
            parts[term.log_name] = values
            if term.weight:
                total = total + term.weight * values
        for name, fn in self.monitor.items():
            if name not in parts:
                parts[name] = self._run(name, fn, completions, references, columns, keys)
        return total, parts


def build_reward_set(
    terms: Sequence[tuple[str, float]],
    scorer: Any = None,
    length_target: int = 32,
    length_slope: float = 0.01,
    format_pattern: str = "",
) -> RewardSet:
    r"""The :class:`RewardSet` of parsed ``terms``; ``scorer`` (CIDEr-D over the training references) also adds
    the monitored ``cider_d`` / ``bleu_4`` values to every call's parts."""
    kwargs = dict(scorer=scorer, length_target=length_target, length_slope=length_slope, format_pattern=format_pattern)
    built = [
        RewardTerm(name, weight, builtin_reward(name, **kwargs) if name in BUILTIN_REWARDS else load_user_reward(name))
        for name, weight in terms
    ]
    monitor = {name: builtin_reward(name, **kwargs) for name in MONITORED} if scorer is not None else {}
    return RewardSet(built, monitor)
