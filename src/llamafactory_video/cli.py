"""``llamafactory-video``: the plugin's own tools (training itself stays ``llamafactory-cli train``).

Subcommands register themselves in :data:`COMMANDS` as ``name -> (help, add_arguments, run)``.
"""

import argparse
import sys
from typing import Callable, Optional


Command = tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]


def _stages_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def _stages_run(args: argparse.Namespace) -> int:
    import json

    from .registry import STAGES

    rows = [
        {"stage": s.name, "llamaboard_label": s.label, "extra_columns": list(s.extra_columns), "docs": s.docs}
        for s in STAGES.values()
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            columns = ", ".join(row["extra_columns"]) or "-"
            print(f"{row['stage']:<14} {row['llamaboard_label']:<30} columns: {columns:<20} {row['docs']}")
    return 0


def _source_help(module_path: str) -> str:
    r"""``HELP``, else the first string of ``COMMAND``, else the docstring's first line, read without importing."""
    import ast
    from importlib.util import find_spec

    try:
        spec = find_spec(module_path)
        with open(spec.origin, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in tree.body:
            names = [getattr(target, "id", None) for target in getattr(node, "targets", [])]
            if isinstance(node, ast.Assign) and names in (["HELP"], ["COMMAND"]):
                value = node.value.elts[0] if isinstance(node.value, ast.Tuple) and node.value.elts else node.value
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    return value.value
        return (ast.get_docstring(tree) or module_path).strip().splitlines()[0]
    except Exception:  # noqa: BLE001 - help text only
        return module_path


def _lazy(module_path: str) -> Command:
    r"""The ``Command`` that ``module_path`` defines as ``COMMAND = (help, add_arguments, run)``, imported on use.

    The help text is read from the module's source, so building this table imports nothing.
    """
    from importlib import import_module

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        import_module(module_path).COMMAND[1](parser)

    def run(args: argparse.Namespace) -> int:
        return import_module(module_path).COMMAND[2](args)

    return (_source_help(module_path), add_arguments, run)


COMMANDS: dict[str, Command] = {
    "stages": ("list the stages this plugin adds to llamafactory-cli train", _stages_args, _stages_run),
    "check-data": _lazy("llamafactory_video.tools.check_data"),
    "cache-frames": _lazy("llamafactory_video.tools.cache_frames"),
    "eval-captions": _lazy("llamafactory_video.tools.eval_captions"),
    "add-subtitles": _lazy("llamafactory_video.tools.add_subtitles"),
    "subtitle-prompt": _lazy("llamafactory_video.tools.subtitle_prompt"),
    "transcribe": _lazy("llamafactory_video.tools.transcribe"),
    "long-qa": _lazy("llamafactory_video.tools.long_qa"),
    "score": _lazy("llamafactory_video.tools.sparc_score"),
    "attention-map": _lazy("llamafactory_video.tools.attention_map"),
    "make-billiards": _lazy("llamafactory_video.tools.make_billiards"),
    "hilight-build": _lazy("llamafactory_video.tools.hilight_build"),
    "convert-clip-vip": _lazy("llamafactory_video.tools.convert_clip_vip"),
}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="llamafactory-video", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    return COMMANDS[args.command][2](args)


if __name__ == "__main__":
    sys.exit(main())
