"""`envsetup matrix`: show what the compatibility matrices know, and (`update`) what upstream
publishes that they lack. The matrices are the only place compatibility facts live, so this is
how a person checks a decision's inputs and how a scheduled CI job notices a new release."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from envsetup.cli._ci_matrix import add_format_arguments, render_format
from envsetup.cli._types import seconds
from envsetup.errors import EnvsetupError, UsageError
from envsetup.matrices import (
    PLATFORMS,
    PYTHON_RE,
    VARIANT_RE,
    Matrices,
    load,
    variant_cuda,
)
from envsetup.matrices.schema import Release
from envsetup.model.plan import ALLOW_INSECURE_VARIABLE, insecure_index_allowed
from envsetup.terminal import printable

HELP = (
    "List the releases, variants, Pythons and GPU archs envsetup knows; `update` checks upstream."
)

#: The platform whose arch list `archs` shows when no --platform narrows the view.
_ARCH_PLATFORM = "linux-x86_64"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--torch", metavar="SPEC", help="torch version or PEP 440 specifier")
    parser.add_argument("--python", metavar="X.Y", help="only releases with wheels for it (3.13t)")
    parser.add_argument("--platform", choices=PLATFORMS, help="only this platform")
    parser.add_argument("--variant", metavar="NAME", help="only releases publishing it (cu121)")
    add_format_arguments(parser)  # --format table|json|github|gitlab, --newest N, --session
    parser.add_argument(
        "--json", dest="format", action="store_const", const="json", help="same as --format json"
    )
    parser.set_defaults(action=None)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    update = actions.add_parser(
        "update",
        help="compare the matrices with the upstream wheel listing",
        description="Read the listing of download.pytorch.org/whl/torch/ (PEP 503 HTML or PEP 691 "
        "JSON) and report the releases, variants and Python tags it has that matrices/ lack, "
        "as TOML rows to add.",
    )
    update.add_argument(
        "--listing",
        metavar="FILE_OR_URL",
        help="the listing to compare with (default: download.pytorch.org/whl/torch/)",
    )
    update.add_argument(
        "--allow-insecure-index",
        action="store_true",
        default=insecure_index_allowed(os.environ),
        help=f"allow an http:// listing (env {ALLOW_INSECURE_VARIABLE}=1)",
    )
    update.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when upstream has something the matrices lack (for a scheduled CI job)",
    )
    update.add_argument(
        "--timeout",
        type=seconds,
        default=30.0,
        metavar="SECONDS",
        help="longest wait for the listing (default 30)",
    )
    update.add_argument("--format", choices=("table", "json"), default="table")
    update.add_argument(
        "--json", dest="format", action="store_const", const="json", help="same as --format json"
    )
    _configure_verify(actions)


def _configure_verify(actions: Any) -> None:
    verify = actions.add_parser(
        "verify",
        help="check the matrices against the registry's own wheels",
        description="Read the package registry's listing of torch, torchvision and torchaudio "
        "and, from the wheels (by HTTP range requests), METADATA and torch/version.py; report per "
        "release which matrix facts the wheels confirm, contradict or cannot show. Downloads and "
        "what was read are cached in ~/.cache/envsetup-evidence (env ENVSETUP_EVIDENCE_CACHE).",
    )
    verify.add_argument(
        "--index",
        metavar="URL",
        help="simple index root to read (default: PyPI's, https://pypi.org/simple/)",
    )
    verify.add_argument(
        "--archs",
        metavar="SPEC",
        help="also read the CUDA code of the Linux x86_64 wheel for releases matching this PEP "
        "440 specifier, or 'all' (a few hundred MB per release)",
    )
    verify.add_argument(
        "--allow-insecure-index",
        action="store_true",
        default=insecure_index_allowed(os.environ),
        help=f"allow an http:// index (env {ALLOW_INSECURE_VARIABLE}=1)",
    )
    verify.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS")
    verify.add_argument("--verbose", action="store_true", help="print confirmed facts too")
    verify.add_argument(
        "--check", action="store_true", help="exit 1 when a fact is contradicted or missing"
    )
    verify.add_argument("--format", choices=("table", "json"), default="table")


def run(args: argparse.Namespace) -> int:
    data = load()
    if args.action == "update":
        return _update(args, data)
    if args.action == "verify":
        return _verify(args, data)
    from envsetup.integrations.cells import newest_count

    args.newest = newest_count(args.newest, "--newest")
    ci_matrix = render_format(args)  # github / gitlab: CI job matrices of the same filters
    if ci_matrix is not None:
        print(ci_matrix, end="" if ci_matrix.endswith("\n") else "\n")
        return 0
    selection = select(data, args)
    _LIST_FORMATS[args.format or "table"](data, selection)
    return 0


# --- listing --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shown:
    """One release as the filters let it be seen: the platforms that matched."""

    release: Release
    platforms: tuple[str, ...]


def select(data: Matrices, args: argparse.Namespace) -> list[Shown]:
    """The releases and platforms the --torch/--python/--platform/--variant filters keep, and
    --newest after them (as the CI forms count), oldest first."""
    if args.python is not None and not PYTHON_RE.match(args.python):
        raise UsageError(
            f"--python {args.python!r} is not a Python version", hint="use X.Y or X.Yt: 3.13t"
        )
    if args.variant is not None and not VARIANT_RE.match(args.variant):
        raise UsageError(
            f"--variant {args.variant!r} is not a variant name",
            hint="use cpu, cuXYZ (cu121), rocmX.Y (rocm6.2) or xpu",
        )
    from envsetup.integrations.cells import select_releases

    selected = select_releases(
        data,
        torch=args.torch,
        python=args.python,
        variants=args.variant,
        platforms=(args.platform,) if args.platform else PLATFORMS,
        newest=args.newest,
    )
    shown = [Shown(found.release, found.platforms) for found in reversed(selected)]
    if not shown:
        raise EnvsetupError(
            "no release in the matrices matches "
            + " ".join(
                f"--{name} {value}"
                for name, value in vars(args).items()
                if name in ("torch", "python", "platform", "variant") and value is not None
            ),
            hint="run `envsetup matrix` without filters to see what is known",
        )
    return shown


def _arch_names(data: Matrices, shown: Shown, variant: str) -> list[str] | None:
    if variant.startswith("rocm"):
        targets = data.rocm_targets(variant)
        return None if targets is None else list(targets)
    platform = _ARCH_PLATFORM if _ARCH_PLATFORM in shown.platforms else shown.platforms[0]
    if variant not in shown.release.variants.get(platform, ()):
        platform = next(p for p in shown.platforms if variant in shown.release.variants[p])
    arch = data.arch_list(shown.release.version, variant, platform)
    return None if arch is None else list(arch.get_arch_list())


def _gpu_variants(shown: Shown) -> list[str]:
    seen: dict[str, None] = {}
    for platform in shown.platforms:
        for variant in shown.release.variants[platform]:
            if variant_cuda(variant) or variant.startswith("rocm"):
                seen[variant] = None
    return list(seen)


def release_json(data: Matrices, shown: Shown) -> dict[str, Any]:
    release = shown.release
    pythons = {p for platform in shown.platforms for p in release.pythons(platform)}
    return {
        "torch": release.torch,
        "date": release.date,
        "python": [p for p in release.python if p in pythons],
        "python_unconfirmed": list(release.python_unconfirmed),
        "variants": {p: list(release.variants[p]) for p in shown.platforms},
        "pypi_default": {p: release.pypi_default[p] for p in shown.platforms},
        "companions": {"torchvision": release.torchvision, "torchaudio": release.torchaudio},
        "archs": {v: _arch_names(data, shown, v) for v in _gpu_variants(shown)},
        "confirmed": release.confirmed,
        "unconfirmed": list(release.unconfirmed),
        "sources": list(release.sources),
        "notes": release.notes,
    }


def _cuda_versions(data: Matrices, selection: Sequence[Shown]) -> list[str]:
    """The CUDA X.Y of every variant shown, or every toolkit when nothing was filtered out."""
    if len(selection) == len(data.releases) and all(
        s.platforms == tuple(p for p in PLATFORMS if s.release.variants.get(p)) for s in selection
    ):
        return list(dict.fromkeys(t.cuda for t in data.toolkits))
    used = {variant_cuda(v) for s in selection for v in _gpu_variants(s)} - {None}
    return [cuda for cuda in dict.fromkeys(t.cuda for t in data.toolkits) if cuda in used]


def cuda_json(data: Matrices, selection: Sequence[Shown]) -> list[dict[str, Any]]:
    wanted = set(_cuda_versions(data, selection))
    rows = []
    for toolkit in data.toolkits:
        if toolkit.cuda not in wanted:
            continue
        major = int(toolkit.cuda.split(".")[0])
        rows.append(
            {
                "cuda": toolkit.cuda,
                "update": toolkit.update,
                "release": toolkit.release,
                "driver": {"linux": toolkit.linux, "windows": toolkit.windows},
                "minor_compat_floor": {
                    "linux": data.minor_compat_floor(major, "linux"),
                    "windows": data.minor_compat_floor(major, "windows"),
                },
                "branch": toolkit.branch,
                "confirmed": toolkit.confirmed,
                "unconfirmed": list(toolkit.unconfirmed),
                "source": toolkit.source,
            }
        )
    return rows


def print_json(data: Matrices, selection: Sequence[Shown]) -> None:
    document = {
        "releases": [release_json(data, shown) for shown in selection],
        "cuda": cuda_json(data, selection),
    }
    print(json.dumps(document, indent=2))


def pythons_text(tags: Sequence[str]) -> str:
    """3.9 3.10 3.11 3.13t -> "3.9-3.11, 3.13t": short enough for a table column."""
    plain = [int(tag.split(".")[1]) for tag in tags if not tag.endswith("t")]
    runs: list[list[int]] = []
    for minor in plain:
        if runs and minor == runs[-1][-1] + 1:
            runs[-1].append(minor)
        else:
            runs.append([minor])
    parts = [f"3.{r[0]}" if len(r) == 1 else f"3.{r[0]}-3.{r[-1]}" for r in runs]
    return ", ".join(parts + [tag for tag in tags if tag.endswith("t")])


def _table(rows: Sequence[Sequence[str]]) -> Iterator[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        yield "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()


def print_table(data: Matrices, selection: Sequence[Shown]) -> None:
    rows = [["torch", "released", "platform", "python", "variants", "pypi", "vision", "audio"]]
    for shown in selection:
        release = shown.release
        for n, platform in enumerate(shown.platforms):
            first = n == 0
            mark = "" if release.confirmed and not release.unconfirmed else "*"
            rows.append(
                [
                    release.torch + mark if first else "",
                    release.date if first else "",
                    platform,
                    pythons_text(release.pythons(platform)),
                    " ".join(release.variants[platform]),
                    release.pypi_default[platform],
                    (release.torchvision or "-") if first else "",
                    (release.torchaudio or "-") if first else "",
                ]
            )
    lines = list(_table(rows))
    marked = [s.release for s in selection if not s.release.confirmed or s.release.unconfirmed]
    if marked:
        lines.append("")
        lines.append("* not confirmed by the sources read (see matrices/torch.toml notes):")
        lines.extend(f"  {r.torch}: {', '.join(r.unconfirmed)}" for r in marked)
    cuda_rows = [["cuda", "toolkit driver linux / windows", "minor-version floor linux / windows"]]
    for row in cuda_json(data, selection):
        if row["update"] != 0:
            continue
        driver, floor = row["driver"], row["minor_compat_floor"]
        cuda_rows.append(
            [
                row["cuda"] + ("" if row["confirmed"] else "*"),
                f"{driver['linux'] or 'n/a'} / {driver['windows'] or 'n/a'}",
                f"{floor['linux'] or '-'} / {floor['windows'] or '-'}"
                if floor["linux"]
                else "- (no minor-version compatibility)",
            ]
        )
    if len(cuda_rows) > 1:
        lines.append("")
        lines.extend(_table(cuda_rows))
    print(printable("\n".join(lines)))


#: Output formats the verb prints itself; github and gitlab come from
#: `envsetup.integrations.ci_export`.
_LIST_FORMATS: dict[str, Callable[[Matrices, Sequence[Shown]], None]] = {
    "table": print_table,
    "json": print_json,
}


# --- verify ---------------------------------------------------------------------------------------


def _verify(args: argparse.Namespace, data: Matrices) -> int:
    from urllib.parse import urlsplit

    from envsetup.matrices import registry, wheel_evidence

    args.index = args.index or registry.DEFAULT_INDEX
    scheme = urlsplit(args.index).scheme
    if scheme not in ("https", "http") or (scheme == "http" and not args.allow_insecure_index):
        raise UsageError(
            f"--index {args.index!r}: expected an https:// simple index root",
            hint="use https://, or pass --allow-insecure-index for a plain http:// index you trust",
        )
    if args.archs not in (None, "all"):
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        try:
            SpecifierSet(args.archs)
        except InvalidSpecifier:
            raise UsageError(
                f"--archs {args.archs!r}: expected a PEP 440 specifier such as '>=2.11' or 'all'"
            ) from None
    report = wheel_evidence.verify(data, args.index, archs=args.archs, timeout=args.timeout)
    if args.format == "json":
        print(json.dumps(wheel_evidence.report_json(report), indent=2))
    else:
        print("\n".join(wheel_evidence.report_text(report, verbose=args.verbose)))
    failed = report.counts()[wheel_evidence.CONTRADICTED] or report.missing
    return 1 if args.check and failed else 0


# --- update ---------------------------------------------------------------------------------------


def _update(args: argparse.Namespace, data: Matrices) -> int:
    from envsetup.matrices import index_listing

    listing = args.listing or index_listing.TORCH_LISTING_URL  # imported only when updating
    text, content_type = index_listing.read_listing(
        listing, timeout=args.timeout, allow_insecure=args.allow_insecure_index
    )
    files = index_listing.wheels(text, content_type)
    if not files:
        raise EnvsetupError(
            f"the listing at {listing} names no wheels",
            hint="expected the PEP 503/691 page of " + index_listing.TORCH_LISTING_URL,
        )
    findings = index_listing.missing_from(data, index_listing.summarize(files))
    if args.format == "json":
        print(json.dumps(findings_json(listing, len(files), findings), indent=2))
    else:
        print(printable("\n".join(findings_text(listing, len(files), findings))))
    return 1 if args.check and findings else 0


def findings_json(listing: str, count: int, findings: Any) -> dict[str, Any]:
    return {
        "listing": listing,
        "wheels": count,
        "new_releases": [
            {
                "torch": str(new.version),
                "python": sorted(new.all_pythons(), key=_python_key),
                "variants": _stub_variants(new),
            }
            for new in findings.releases
        ],
        "new_variants": [
            {"torch": t, "platform": p, "variant": v} for t, p, v in findings.variants
        ],
        "new_pythons": [{"torch": t, "platform": p, "python": y} for t, p, y in findings.pythons],
    }


def _python_key(tag: str) -> tuple[int, bool]:
    return int(tag.rstrip("t").split(".")[1]), tag.endswith("t")


def _stub_variants(new: Any) -> dict[str, list[str]]:
    """Labelled variants per platform, as listed; a platform with only unlabelled wheels (macOS)
    gets "cpu", marked unconfirmed by the stub. A labelled platform gets no "cpu" the listing
    does not show: its unlabelled wheels are PyPI's default build, not a CPU one."""
    from envsetup.matrices import variant_sort_key

    result = {}
    for platform in PLATFORMS:
        if platform not in new.pythons:
            continue
        variants = set(new.variants.get(platform, ())) or {"cpu"}
        result[platform] = sorted(variants, key=variant_sort_key)
    return result


def findings_text(listing: str, count: int, findings: Any) -> Iterator[str]:
    yield f"Compared matrices/ with {listing} ({count} wheels)."
    if not findings:
        yield "The matrices know every release, variant and Python tag it lists."
        return
    if findings.releases:
        versions = ", ".join(str(new.version) for new in findings.releases)
        yield f"New releases ({len(findings.releases)}): {versions}"
    for torch, platform, variant in findings.variants:
        yield f"New variant: torch {torch} {platform} {variant}"
    for torch, platform, python in findings.pythons:
        yield f"New Python tag: torch {torch} {platform} {python}"
    yield ""
    yield "Rows for matrices/torch.toml (printed, not merged: the file's comments, order and"
    yield (
        "sources are kept by hand; fill in every FILL IN and run "
        "tests/unit/matrices/test_matrices_schema.py):"
    )
    for new in findings.releases:
        yield ""
        yield from release_stub(new, listing)
    for torch, platform, variant in findings.variants:
        yield f'# torch {torch}: add "{variant}" to [release.variants] {platform}'
    for torch, platform, python in findings.pythons:
        yield f'# torch {torch}: add "{python}" for {platform} (python, python_platforms)'


def release_stub(new: Any, listing: str) -> Iterator[str]:
    """A `[[release]]` table for a release the matrices lack, with what the listing cannot tell
    left as FILL IN (the schema test rejects it until a person fills it in)."""
    variants = _stub_variants(new)
    pythons = sorted(new.all_pythons(), key=_python_key)
    guessed = [p for p in variants if not new.variants.get(p)]
    unconfirmed = ["date", "pypi_default", "torchvision", "torchaudio"]
    unconfirmed += [f"variants.{p}" for p in guessed]
    yield "[[release]]"
    yield f'torch = "{new.version}"'
    yield 'date = "FILL IN (YYYY-MM-DD)"'
    yield f"python = {json.dumps(pythons)}"
    yield 'torchvision = "FILL IN"'
    yield 'torchaudio = "FILL IN (or none)"'
    yield "confirmed = false"
    yield f"unconfirmed = {json.dumps(unconfirmed)}"
    yield f"sources = [{json.dumps(listing)}]"
    note = "Added from the index listing by `envsetup matrix update`."
    if guessed:
        note += f" Unlabelled wheels only on {', '.join(guessed)}: assumed cpu."
    yield f"notes = {json.dumps(note)}"
    partial = {
        python: [p for p in variants if python in new.pythons.get(p, ())] for python in pythons
    }
    partial = {python: ps for python, ps in partial.items() if len(ps) < len(variants)}
    if partial:
        yield "[release.python_platforms]"
        for python, ps in partial.items():
            yield f'"{python}" = {json.dumps(ps)}'
    yield "[release.variants]"
    for platform, names in variants.items():
        yield f"{platform} = {json.dumps(names)}"
    yield "[release.pypi_default]"
    for platform in variants:
        yield f'{platform} = "FILL IN"'
