"""The `seqrec-fast` command. Each subcommand's work lives in the module that owns it; this file
only parses arguments and prints."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import traceback

# Modules that add their own subcommands: each has `register(commands)`, which adds parsers to
# the `commands` subparsers object and sets `handler` (a function of the parsed args returning an
# exit code). Keep their top-level imports light: `seqrec-fast --help` imports all of them.
_DOMAIN_COMMANDS: tuple[str, ...] = ("seqrec_fast.train.commands", "seqrec_fast.data.commands",
                                     "seqrec_fast.algorithms.commands", "seqrec_fast.serving.commands")


def _print_json(payload: dict) -> None:
    print(json.dumps(payload, default=str))


def _cmd_version(args: argparse.Namespace) -> int:
    from . import __version__

    if args.json:
        _print_json({"seqrec_fast": __version__})
    else:
        print(__version__)
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import collect, format_report

    report = collect(build_ops=not args.no_build)
    if args.json:
        _print_json(report)
    else:
        print(format_report(report))
    return 0


def _cmd_ops_build(args: argparse.Namespace) -> int:
    from .ops import load

    status = load(force_cuda=True if args.cuda else None, verbose=args.verbose)
    failed = not status.cpu.built or (args.cuda and not status.cuda.built)
    if args.json:
        _print_json(status.to_dict())
    else:
        print(f"CPU ops:  {'built' if status.cpu.built else 'FAILED'}  {status.cpu.library or status.cpu.reason}")
        print(f"CUDA ops: {'built' if status.cuda.built else 'not built'}  {status.cuda.library or status.cuda.reason}")
    return 1 if failed else 0


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from .quickstart import run

    return run(json_output=args.json)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqrec-fast",
        description="Train and search sequential recommenders fast.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, handler, help_text: str, json_flag: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if json_flag:
            sub.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        sub.set_defaults(handler=handler)
        return sub

    add("version", _cmd_version, "print the package version")

    doctor = add("doctor", _cmd_doctor, "report torch, CUDA, compilers and which native parts are built")
    doctor.add_argument("--no-build", action="store_true", help="do not build the operators, only inspect")

    ops = commands.add_parser("ops", help="native operator tools", description="native operator tools")
    ops_commands = ops.add_subparsers(dest="ops_command", metavar="OPS_COMMAND", required=True)
    build = ops_commands.add_parser(
        "build", help="build (or reuse) the C++/CUDA operators now",
        description="Build (or reuse from the cache) the C++/CUDA operators. Exits 1 if a requested variant fails.",
    )
    build.add_argument("--cuda", action="store_true", help="also compile and link the CUDA kernels, even without a GPU")
    build.add_argument("--verbose", action="store_true", help="show the compiler's commands and output")
    build.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    build.set_defaults(handler=_cmd_ops_build)

    add("quickstart", _cmd_quickstart, "the README's main job: check the install and run a first model")

    for module_name in _DOMAIN_COMMANDS:
        importlib.import_module(module_name).register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs one command. A user's mistake (bad option, file or directory: ValueError and its
    subclasses, OSError) is one line on stderr and exit code 2; anything else is a bug in this
    package, shown with its traceback and a request to report it."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as error:
        print(f"seqrec-fast: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    except Exception:
        traceback.print_exc()
        print("seqrec-fast: this is a bug in seqrec_fast, not a problem with your input: please report it "
              "with the command you ran and the traceback above", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
