r"""``llamafactory-video eval-captions``: BLEU-1..4, METEOR, ROUGE-L and CIDEr-D of predicted captions, overall and
per group, with pycocoevalcap's numbers.

Inputs:

* ``--predictions`` JSONL, one object per line, either ``{"id": ..., "caption": "..."}`` or LlamaFactory's
  ``generated_predictions.jsonl`` (``{"prompt", "predict", "label"}`` in 0.9.5). In the latter the id of a
  prediction is its 0-based LINE NUMBER in the file (``"0"``, ``"1"``, ...; blank lines count but hold nothing), so
  the references file must be keyed by those numbers as strings; ``label`` is ignored (the references file holds
  all references);
* ``--references`` JSON ``{id: [caption, ...]}`` (a bare string counts as one reference);
* ``--groups`` (optional) JSON ``{id: group}``, e.g. MSR-VTT categories or ``animation`` / ``sports`` /
  ``live action``. Predictions without a group are reported under ``(ungrouped)``.

Captions are tokenised with the Java-free PTB approximation (``--tokenizer builtin``, default), the real
PTBTokenizer (``ptb``, needs Java) or not at all (``none``: already tokenised). Per-group scores are pycocoevalcap's
on the group's subset (so a group's CIDEr-D idf comes from that group's references). METEOR needs Java; without it
(or with ``--no-meteor``) it is reported as skipped and written as ``null``.

``--output`` writes JSON: ``bleu_1 .. bleu_4, meteor, rouge_l, cider`` (pycocoevalcap's scale: CIDEr x10),
``num_samples``, ``groups: {group: {same keys, num_samples}}``, ``tokenizer``, ``prediction_format`` and
``skipped: {metric: reason}``.
"""

import argparse
import json
import os
import sys
from typing import Optional

HELP = "BLEU-1..4, METEOR, ROUGE-L, CIDEr-D of predicted captions, overall and per group (pycocoevalcap's numbers)"
UNGROUPED = "(ungrouped)"


class InputError(ValueError):
    """A problem with the user's files; reported without a traceback."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--predictions",
        required=True,
        metavar="FILE",
        help='JSONL of {"id", "caption"}, or LlamaFactory\'s generated_predictions.jsonl (ids = 0-based line numbers)',
    )
    parser.add_argument(
        "--references",
        metavar="FILE",
        help="JSON {id: [caption, ...]}; omit it for the scst stage's <prefix>_captions.jsonl, whose "
        'lines carry "references" (and "category", used as the groups when --groups is omitted)',
    )
    parser.add_argument("--groups", metavar="FILE", help="JSON {id: group}: also report every group")
    parser.add_argument("--output", metavar="FILE", help="write the scores as JSON")
    parser.add_argument(
        "--tokenizer",
        choices=("builtin", "ptb", "none"),
        default="builtin",
        help="builtin: Java-free PTB approximation (default); ptb: pycocoevalcap's PTBTokenizer "
        "(Java); none: captions are already tokenised",
    )
    parser.add_argument("--no-meteor", action="store_true", help="skip METEOR (it starts a Java process, ~15 s)")


def _read_json(path: str, what: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise InputError(f"{what} file not found: {path}") from None
    except json.JSONDecodeError as err:
        raise InputError(f"{what} file {path} is not valid JSON: {err}") from None


def load_predictions(path: str) -> tuple[dict[str, str], str]:
    """``({id: caption}, format)`` with format ``"jsonl"`` or ``"llamafactory"`` (ids = 0-based line numbers)."""
    predictions: dict[str, str] = {}
    fmt: Optional[str] = None
    if not os.path.isfile(path):
        raise InputError(f"predictions file not found: {path}")
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f):
            if not line.strip():
                continue
            where = f"{path}:{line_no + 1}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(f"{where}: not a JSON object ({err})") from None
            if not isinstance(record, dict):
                raise InputError(f"{where}: expected a JSON object, got {type(record).__name__}")
            line_fmt = "llamafactory" if "predict" in record and "caption" not in record else "jsonl"
            if fmt is None:
                fmt = line_fmt
            elif line_fmt != fmt:
                raise InputError(f"{where}: mixes {line_fmt} and {fmt} records")
            if fmt == "llamafactory":
                key, caption = str(line_no), record["predict"]
            else:
                if "id" not in record or "caption" not in record:
                    raise InputError(
                        f'{where}: expected keys "id" and "caption" (or LlamaFactory\'s "predict"), '
                        f"got {sorted(record)}"
                    )
                key, caption = str(record["id"]), record["caption"]
            if not isinstance(caption, str):
                raise InputError(f"{where}: the caption must be a string, got {type(caption).__name__}")
            if key in predictions:
                raise InputError(f"{where}: duplicate prediction id {key!r}")
            predictions[key] = caption
    if not predictions:
        raise InputError(f"no prediction in {path}")
    return predictions, fmt or "jsonl"


def load_references(path: str) -> dict[str, list[str]]:
    data = _read_json(path, "references")
    if not isinstance(data, dict):
        raise InputError(f"references file {path} must hold a JSON object {{id: [caption, ...]}}")
    references = {}
    for key, refs in data.items():
        if isinstance(refs, str):
            refs = [refs]
        if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
            raise InputError(f"references[{key!r}] must be a list of strings")
        if not refs:
            raise InputError(f"references[{key!r}] is empty")
        references[str(key)] = refs
    return references


def load_embedded_references(path: str) -> tuple[dict[str, list[str]], dict[str, str]]:
    """``({id: references}, {id: category})`` from prediction lines that carry them (the scst stage's output)."""
    references: dict[str, list[str]] = {}
    groups: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f):
            if not line.strip():
                continue
            record = json.loads(line)
            if "references" not in record:
                raise InputError(f'{path}:{line_no + 1}: no "references" in the line; pass --references FILE')
            refs = record["references"]
            if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
                raise InputError(f'{path}:{line_no + 1}: "references" must be a non-empty list of strings')
            references[str(record["id"])] = refs
            if record.get("category"):
                groups[str(record["id"])] = str(record["category"])
    return references, groups


def load_groups(path: str) -> dict[str, str]:
    data = _read_json(path, "groups")
    if not isinstance(data, dict):
        raise InputError(f"groups file {path} must hold a JSON object {{id: group}}")
    return {str(k): str(v) for k, v in data.items()}


def _tokenised(predictions: dict[str, str], references: dict[str, list[str]], tokenizer: str):
    from ..metrics.captions import ptb_tokenize_corpus, tokenize_corpus

    gts = {k: references[k] for k in predictions}
    res = {k: [c] for k, c in predictions.items()}
    if tokenizer == "none":
        return gts, res
    if tokenizer == "ptb":
        return ptb_tokenize_corpus(gts), ptb_tokenize_corpus(res)
    return tokenize_corpus(gts), tokenize_corpus(res)


def evaluate(
    predictions: dict[str, str],
    references: dict[str, list[str]],
    groups: Optional[dict[str, str]] = None,
    tokenizer: str = "builtin",
    with_meteor: bool = True,
) -> tuple[dict, list[str]]:
    """The result object written by ``--output`` and a list of warnings.

    Raises :class:`InputError` for predictions without references; METEOR problems become ``skipped``.
    """
    from ..metrics.captions import MetricUnavailable, caption_metrics, meteor_available

    warnings = []
    missing = [k for k in predictions if k not in references]
    if missing:
        hint = " (LlamaFactory predictions are keyed by 0-based line numbers)" if missing[0].isdigit() else ""
        raise InputError(f"{len(missing)} prediction id(s) have no reference, e.g. {missing[:5]}{hint}")
    unpredicted = len(references) - len(predictions)
    if unpredicted > 0:
        warnings.append(f"{unpredicted} reference id(s) have no prediction; scoring the {len(predictions)} predicted")
    gts, res = _tokenised(predictions, references, tokenizer)

    skipped = {}
    if with_meteor:
        reason = meteor_available()
        if reason is not None:
            skipped["meteor"] = reason
            with_meteor = False
    else:
        skipped["meteor"] = "--no-meteor"

    def score(keys: list[str]) -> dict:
        nonlocal with_meteor
        sub_gts, sub_res = {k: gts[k] for k in keys}, {k: res[k] for k in keys}
        try:
            values = caption_metrics(sub_gts, sub_res, with_meteor=with_meteor)
        except MetricUnavailable as err:
            skipped["meteor"] = str(err)
            with_meteor = False
            values = caption_metrics(sub_gts, sub_res, with_meteor=False)
        values["num_samples"] = len(keys)
        return values

    keys = list(predictions)
    result = score(keys)
    if groups is not None:
        by_group: dict[str, list[str]] = {}
        for k in keys:
            by_group.setdefault(groups.get(k, UNGROUPED), []).append(k)
        if UNGROUPED in by_group:
            warnings.append(f"{len(by_group[UNGROUPED])} prediction(s) have no group; reported as {UNGROUPED!r}")
        result["groups"] = {g: score(by_group[g]) for g in sorted(by_group)}
        if "meteor" in skipped:  # METEOR died part-way: no METEOR anywhere rather than some groups only
            result["meteor"] = None
            for values in result["groups"].values():
                values["meteor"] = None
    result["tokenizer"] = tokenizer
    result["skipped"] = skipped
    return result, warnings


def format_table(result: dict) -> str:
    """The scores as a fixed-width table: one row overall, one per group."""
    from ..metrics.captions import METRIC_KEYS

    names = {
        "bleu_1": "BLEU-1",
        "bleu_2": "BLEU-2",
        "bleu_3": "BLEU-3",
        "bleu_4": "BLEU-4",
        "meteor": "METEOR",
        "rouge_l": "ROUGE-L",
        "cider": "CIDEr",
    }
    rows = [("overall", result)] + list(result.get("groups", {}).items())
    width = max(12, *(len(name) for name, _ in rows))
    lines = [f"{'':<{width}} " + " ".join(f"{names[k]:>8}" for k in METRIC_KEYS) + f" {'N':>6}"]
    for name, values in rows:
        cells = " ".join(f"{'-':>8}" if values[k] is None else f"{values[k]:>8.4f}" for k in METRIC_KEYS)
        lines.append(f"{name:<{width}} {cells} {values['num_samples']:>6}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        predictions, fmt = load_predictions(args.predictions)
        if args.references:
            references = load_references(args.references)
            groups = load_groups(args.groups) if args.groups else None
        else:
            references, embedded_groups = load_embedded_references(args.predictions)
            groups = load_groups(args.groups) if args.groups else (embedded_groups or None)
        result, warnings = evaluate(predictions, references, groups, args.tokenizer, not args.no_meteor)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - e.g. --tokenizer ptb without Java
        from ..metrics.captions import MetricUnavailable

        if isinstance(err, MetricUnavailable):
            print(f"error: {err}", file=sys.stderr)
            return 2
        raise
    result["prediction_format"] = fmt
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(format_table(result))
    for metric, reason in result["skipped"].items():
        print(f"{metric.upper()} skipped: {reason}")
    if args.output:
        directory = os.path.dirname(os.path.abspath(args.output))
        os.makedirs(directory, exist_ok=True)
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
        print(f"wrote {args.output}")
    return 0


COMMAND = (HELP, add_arguments, run)
