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


COMMANDS: dict[str, Command] = {
    "stages": ("list the stages this plugin adds to llamafactory-cli train", _stages_args, _stages_run),
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
