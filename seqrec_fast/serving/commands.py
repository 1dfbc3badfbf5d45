"""`seqrec-fast recommend` and `seqrec-fast export`."""

from __future__ import annotations

import argparse
import json
import sys

RECOMMEND_HELP = "write the top k items of every user (or of new sequences) of a finished run, in the log's own ids"
EXPORT_HELP = "write a finished run's model as a torch.export program with its item ids and a model card"
DATA_HELP = "where the run's dataset now is (default: the path the run recorded); its content must match the run's"


def register(commands) -> None:
    recommend = commands.add_parser("recommend", help=RECOMMEND_HELP, description=RECOMMEND_HELP)
    recommend.add_argument("run_dir", metavar="RUN_DIR", help="a finished `train` run, a retrained search or a CANet search")
    recommend.add_argument("--out", required=True, metavar="FILE",
                           help="output file; its suffix names the format: .csv or .parquet (one row per user, "
                                "rank, item, score) or .jsonl (one line per user)")
    recommend.add_argument("--k", type=int, default=10, help="items per user (default: 10)")
    source = recommend.add_mutually_exclusive_group()
    source.add_argument("--users", metavar="FILE", help="only these users: a text file of original user ids, one per line")
    source.add_argument("--sequences", metavar="FILE",
                        help="new sequences instead of the dataset's users: a text file with one sequence per line "
                             "(original item ids, oldest first, separated by spaces or commas) or a Parquet file "
                             "with one column of lists; unknown ids are reported by line and skipped")
    recommend.add_argument("--no-filter-history", dest="filter_history", action="store_false",
                           help="may recommend items the user (or sequence) already has (default: never)")
    recommend.add_argument("--data", help=DATA_HELP)
    recommend.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                           help="auto uses CUDA when available (default: auto)")
    recommend.add_argument("--batch-size", type=int, default=1024, help="users scored at once (default: 1024)")
    recommend.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    recommend.add_argument("--json", action="store_true", help="print one JSON object (the summary) as the last line")
    recommend.set_defaults(handler=run_recommend)

    export = commands.add_parser("export", help=EXPORT_HELP, description=EXPORT_HELP)
    export.add_argument("run_dir", metavar="RUN_DIR", help="a finished `train` run, a retrained search or a CANet search")
    export.add_argument("--out", required=True, metavar="DIR",
                        help="the export directory (model.pt2, item_ids.parquet, model_card.json); an earlier "
                             "export there is replaced")
    export.add_argument("--data", help=DATA_HELP)
    export.add_argument("--json", action="store_true", help="print the model card as one JSON object")
    export.set_defaults(handler=run_export)


def run_recommend(args: argparse.Namespace) -> int:
    from .recommend import recommend_to_file
    from .recommender import load

    recommender = load(args.run_dir, data=args.data, device=args.device)
    summary = recommend_to_file(recommender, args.out, k=args.k, filter_history=args.filter_history,
                                users_file=args.users, sequences_file=args.sequences, batch_size=args.batch_size,
                                progress=args.progress)
    if args.json:
        print(json.dumps(summary.to_dict()))
    else:
        what = "sequences" if args.sequences else "users"
        history = "history filtered" if args.filter_history else "history kept"
        print(f"wrote {summary.recommendations} recommendations for {summary.rows} {what} to {summary.out} "
              f"(k {summary.k}, {history}) in {summary.seconds:.1f} s ({summary.rows_per_s:.0f} {what}/s)")
        if summary.skipped_sequences:
            print(f"skipped {summary.skipped_sequences} sequences without a known item", file=sys.stderr)
    return 0


def run_export(args: argparse.Namespace) -> int:
    from .export import export_run

    card = export_run(args.run_dir, args.out, data=args.data)
    if args.json:
        print(json.dumps(card))
    else:
        check = card["check"]
        print(f"exported {card['model']['model']['name']} ({card['output']['shape'][1]} items, input "
              f"[batch, {card['input']['max_len']}]) to {args.out}: model.pt2, item_ids.parquet, model_card.json; "
              f"the saved program reproduces the run's scores on {check['users']} users to "
              f"{check['max_abs_difference']:.1g}")
    return 0
