"""`envsetup verify`: prove from inside an environment that its torch works on this machine."""

from __future__ import annotations

import argparse
import json

from envsetup.cli._output import add_output_arguments, emit, note
from envsetup.cli._report import human
from envsetup.cli._request import add_machine_arguments, add_target_argument, machine_from_args
from envsetup.terminal import printable
from envsetup.verify import Expectation, verify

HELP = "Check that torch in an environment imports, fits this machine and computes on each device."


def configure(parser: argparse.ArgumentParser) -> None:
    add_target_argument(parser)
    parser.add_argument(
        "--expect", metavar="REQ", help="the torch that should be there: torch==2.5.1"
    )
    parser.add_argument("--expect-variant", metavar="VARIANT", help="cpu, cu121, rocm6.2, ...")
    parser.add_argument(
        "--require-gpu", action="store_true", help="fail when no GPU is usable (GPU CI jobs)"
    )
    parser.add_argument(
        "--bench",
        action="store_true",
        help="measure host<->device bandwidth and matmul throughput (device vs CPU)",
    )
    add_output_arguments(parser)
    parser.add_argument(
        "--merge",
        nargs="+",
        metavar="FILE",
        help="merge `verify --json` reports of many nodes (files or folders) into one verdict",
    )
    add_machine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.merge:
        from envsetup.verify.fleet_report import merge, merged_human, merged_json

        merged = merge(args.merge)
        text = json.dumps(merged_json(merged), indent=2, ensure_ascii=False)
        emit(args, text if args.json else printable(merged_human(merged)))
        return 0 if merged.ok else 1
    from envsetup.install.target import find_target

    expect = Expectation.parse(args.expect, args.expect_variant)
    target = find_target(args.python)
    machine, _ = machine_from_args(args, target.probe)
    report = verify(
        target.python,
        machine=machine,
        expect=expect,
        require_gpu=args.require_gpu,
        bench=args.bench,
    )
    if args.json:
        document = {**report.to_json(), "target": target.to_json()}
        emit(args, json.dumps(document, indent=2, ensure_ascii=False))
    else:
        note(args, f"target: {target.describe()}")
        emit(args, printable(human(report)))
    return 0 if report.ok else 1
