"""The search: the newest release with a build that passes every rule, the best variant of
it, the CPU fallback, channel plans, and the Plan built from the choice.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from envsetup.model.plan import ChannelPin, Plan
from envsetup.model.variants import KIND_LABELS, Variant, parse_variant, version_tuple
from envsetup.resolve.context import NoCompatibleBuild, _Choice
from envsetup.resolve.explain import (
    _alternatives,
    _driver_upgrade,
    _explain,
    _facts,
    _failure_message,
    _unconfirmed,
)
from envsetup.resolve.releases import (
    _companion,
    _family_confirmed,
    _matches,
    _served_by_pypi,
    _torch,
    _variants,
)
from envsetup.resolve.request import _family_package
from envsetup.resolve.rules import _driver_verdict, _gpu_verdict, _inferred, _wanted

if TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet

    from envsetup.matrices.schema import Release
    from envsetup.resolve.context import _Context


def _choose_variant(context: _Context, release: Release) -> tuple[_Choice | None, tuple[str, ...]]:
    """The best variant of `release` for this machine, or None + why each was rejected."""
    version = str(release.version)
    offered = [parse_variant(name) for name in _variants(release, context.platform)]
    candidates = [variant for variant in offered if _wanted(context, variant)]
    if not candidates:
        names = ", ".join(v.name for v in offered) or "none"
        wanted = context.forced.name if context.forced else context.target
        return None, (f"torch {version} has no {wanted} build for {context.platform} ({names})",)
    rejected = [
        f"{variant} has no wheel for Python {context.python}"
        for variant in candidates
        if not release.has_wheel(context.python, context.platform, variant.name)
    ]
    candidates = [
        v for v in candidates if release.has_wheel(context.python, context.platform, v.name)
    ]
    passing: list[tuple[Variant, tuple[str, ...]]] = []
    for variant in candidates:
        verdict = _driver_verdict(context, variant) if variant.kind == "cuda" else None
        notes: tuple[str, ...] = ()
        if verdict is None:
            verdict, notes = _gpu_verdict(context, version, variant)
        if verdict is None:
            passing.append((variant, notes))
        else:
            rejected.append(verdict)
    if not passing:
        return None, tuple(rejected)
    confirmed = [item for item in passing if not _inferred(context, version, item[0])]
    variant = _best(context, [item[0] for item in confirmed or passing])
    choice = _explain(context, version, variant, dict(passing)[variant])
    set_aside = [str(item[0]) for item in passing if confirmed and item not in confirmed]
    if set_aside and any(v > variant for v in (parse_variant(n) for n in set_aside)):
        choice = replace(
            choice,
            reasons=(
                *choice.reasons,
                f"{', '.join(set_aside)} also fit{'s' if len(set_aside) == 1 else ''} but only "
                f"by an inferred arch list; {variant}'s list is confirmed",
            ),
        )
    if rejected:
        ruled_out = f"ruled out for torch {version}: " + "; ".join(rejected)
        choice = replace(choice, reasons=(*choice.reasons, ruled_out))
    return choice, tuple(rejected)


def _best(context: _Context, variants: list[Variant]) -> Variant:
    """Prefer the driver's own CUDA major, then the newest ≤ its maximum, then the nearest newer."""
    if context.target == "rocm":
        # A ROCm build whose gfx list is recorded and covers the GPUs beats an unrecorded one.
        known = context.matrices.rocm_targets
        return max(variants, key=lambda v: (known(v.name) is not None, v.version))
    if context.target != "cuda" or context.max_cuda is None:
        return max(variants, key=lambda v: v.version)
    limit = version_tuple(context.max_cuda)[:2]

    def key(variant: Variant) -> tuple[bool, bool, tuple[int, ...]]:
        own_major = variant.version[0] == limit[0]
        within = tuple(variant.version) <= limit
        closeness = variant.version if within else tuple(-part for part in variant.version)
        return own_major, within, closeness

    return max(variants, key=key)


def _stable_plan(
    context: _Context,
    spec: SpecifierSet | None,
    companions: dict[str, SpecifierSet | None],
    *,
    fallback: bool = True,
) -> Plan:
    """Rule 4: the newest matching release with a fitting build; unpinned GPU misses → CPU."""
    pinned = spec is not None
    releases = [r for r in reversed(context.matrices.releases) if _matches(spec, r)]
    forced = context.forced
    if not releases:
        known = ", ".join(str(r.version) for r in context.matrices.releases[-3:])
        raise NoCompatibleBuild(
            f"no torch release matches {spec}; the matrices know releases up to {known}",
            hint="run `envsetup matrix` to list them, or `envsetup matrix update` to refresh",
        )
    skipped: list[str] = []
    unconfirmed: list[str] = []
    #: the newest fit that rests on an inferred arch list: planned only when no older release
    #: fits by confirmed facts (an inferred list never outranks a confirmed build)
    provisional: Plan | None = None
    set_aside: list[str] = []
    for release in releases:
        if forced is not None and forced.name not in _variants(release, context.platform):
            continue  # a forced backend: releases without it are not worth a line each
        if not release.confirmed and not pinned:
            unconfirmed.append(str(release.version))
            continue
        found = _try_release(context, release, companions)
        if isinstance(found, _Choice) and found.inferred:
            if provisional is None:
                provisional = _build_plan(context, release, found, companions, skipped)
                provisional = replace(
                    provisional,
                    warnings=(
                        *provisional.warnings,
                        "no release fits by confirmed arch lists alone: this plan rests on "
                        + "; ".join(found.inferred),
                    ),
                )
            set_aside.append(f"{release.version} {found.variant}")
            continue
        if isinstance(found, _Choice):
            plan = _build_plan(context, release, found, companions, skipped)
            if set_aside:
                plan = replace(
                    plan,
                    reasons=(
                        *plan.reasons[:-1],  # before the closing "rests on" line
                        "not planned although newer: torch "
                        + ", ".join(set_aside)
                        + f" fit{'s' if len(set_aside) == 1 else ''} only by an inferred arch "
                        f"list; torch {release.version} {found.variant}'s list is confirmed",
                        plan.reasons[-1],
                    ),
                )
            if unconfirmed:
                at = len(context.reasons)
                note = (
                    f"newer torch {', '.join(unconfirmed)} not planned: the matrices cannot "
                    f"confirm its wheels yet (--torch {unconfirmed[0]} plans it anyway)"
                )
                plan = replace(plan, reasons=(*plan.reasons[:at], note, *plan.reasons[at:]))
            if found.minor_compat:
                plan = replace(
                    plan, alternatives=(*plan.alternatives, _strict(context, spec, companions))
                )
            return plan
        skipped.append(f"torch {release.version}: " + "; ".join(found))
    if provisional is not None:
        return provisional
    if fallback and not pinned and context.target != "cpu" and context.forced is None:
        return _cpu_fallback(context, spec, companions, skipped)
    if not skipped and forced is not None:
        raise NoCompatibleBuild(
            f"no {_torch(spec)} release has a {forced} build for {context.platform}",
            hint="run `envsetup matrix --variant " + forced.name + "` to see what exists",
        )
    raise NoCompatibleBuild(
        _failure_message(context, spec, skipped),
        hint=_suggest(context, spec, companions, skipped),
    )


def _cpu_fallback(
    context: _Context,
    spec: SpecifierSet | None,
    companions: dict[str, SpecifierSet | None],
    skipped: list[str],
) -> Plan:
    """No GPU build of any release fits: plan the CPU build, loudly, with the way out."""
    kind = KIND_LABELS[context.target]
    cpu_context = replace(
        context,
        target="cpu",
        reasons=[*context.reasons, f"no {kind} build of any torch release fits: CPU build"],
        warnings=[
            *context.warnings,
            "this machine has a GPU but gets the CPU build; newest misses: "
            + " / ".join(skipped[:2]),
        ],
    )
    plan = _stable_plan(cpu_context, spec, companions, fallback=False)
    upgrade = _driver_upgrade(context, spec)
    if upgrade is None:
        return plan
    return replace(plan, alternatives=(upgrade, *plan.alternatives))


def _try_release(
    context: _Context, release: Release, companions: dict[str, SpecifierSet | None]
) -> _Choice | list[str]:
    """The choice for one release, or every reason it fails (rules 3, 5, then 1 and 2)."""
    version = str(release.version)
    pythons = release.pythons(context.platform)
    if context.python not in pythons:
        shown = ", ".join(pythons) or "none"
        return [f"no wheel for Python {context.python} on {context.platform} (has {shown})"]
    problems = []
    for name, wanted in companions.items():
        paired = _companion(release, name)
        family = _family_package(name)
        refusal = None if family is None else family.refusal(release.version, context.platform)
        if refusal is not None:
            problems.append(refusal)
        elif paired is None:
            problems.append(f"{name} has no release paired with torch {version}")
        elif (
            family is not None
            and context.request.policy == "strict"
            and not _family_confirmed(name, release)
        ):
            problems.append(
                f"{name} {paired} pairs with torch {version} only by its documented table, "
                "not by its wheel's metadata (--policy strict)"
            )
        elif wanted is not None and not wanted.contains(paired, prereleases=True):
            problems.append(f"{name} {paired} (paired with torch {version}) is not {wanted}")
    if problems:
        return problems
    choice, rejected = _choose_variant(context, release)
    if choice is None:
        return list(rejected)
    return choice


def _suggest(
    context: _Context,
    spec: SpecifierSet | None,
    companions: dict[str, SpecifierSet | None],
    skipped: list[str],
) -> str:
    """What would work instead: an older torch, a driver upgrade, CPU, fewer companions."""
    ideas: list[str] = []
    if spec is not None:
        try:
            other = _stable_plan(context, None, companions, fallback=False)
        except NoCompatibleBuild:
            pass
        else:
            ideas.append(f"torch {other.torch} ({other.variant}) works here: --torch {other.torch}")
    upgrade = _driver_upgrade(context, spec)
    if upgrade:
        ideas.append(upgrade)
    blocking = [name for name in companions if any(name in line for line in skipped)]
    if blocking:
        ideas.append("drop --with " + ",".join(blocking) + " to free the torch version")
    if context.target != "cpu":
        ideas.append("--backend cpu installs the CPU build")
    return "; ".join(ideas) or "run `envsetup matrix` to see what exists"


def _channel_plan(
    context: _Context, spec: SpecifierSet | None, companions: dict[str, SpecifierSet | None]
) -> Plan:
    """Nightly/test builds are not in the matrices: pick the variant the newest release would."""
    channel = context.request.channel
    newest = context.matrices.releases[-1]
    found = _try_release(context, newest, {})
    # The variant's own warnings (minor-version compatibility, an inferred arch list) hold for the
    # channel's builds of it too.
    variant_warnings: tuple[str, ...] = ()
    if isinstance(found, _Choice):
        variant = found.variant
        reasons = list(found.reasons)
        variant_warnings = found.warnings
    elif context.forced is not None:
        variant, reasons = context.forced, []
    else:
        variant, reasons = Variant("cpu"), [f"no GPU build of torch {newest.version} fits"]
    pins = [_torch(spec)]
    pins += [f"{name}{wanted}" if wanted else name for name, wanted in companions.items()]
    index = f"{context.base}/{channel}/{variant}"
    return Plan(
        torch=ChannelPin(channel, "" if spec is None else str(spec)),
        variant=variant.name,
        index_url=index,
        find_links=None if context.links is None else f"{context.links}/{channel}/{variant}",
        packages=tuple(pins),
        platform=context.platform,
        python=context.python,
        policy=context.request.policy,
        channel=channel,
        pre=True,
        reasons=(
            *context.reasons,
            *reasons,
            f"{channel} channel: {index} with --pre",
        ),
        warnings=(
            *context.warnings,
            *variant_warnings,
            f"the {channel} channel is not in envsetup's matrices: the variant {variant} is "
            f"chosen as for torch {newest.version} and is unverified for {channel} builds",
        ),
    )


def _build_plan(
    context: _Context,
    release: Release,
    choice: _Choice,
    companions: dict[str, SpecifierSet | None],
    skipped: list[str],
) -> Plan:
    version = str(release.version)
    variant = choice.variant
    pypi = _served_by_pypi(context, release, variant)
    reasons = [*context.reasons]
    warnings = [*context.warnings, *choice.warnings, *_unconfirmed(context, release)]
    if skipped:
        reasons.append("newer releases do not fit: " + " / ".join(skipped[:2]))
    reasons += choice.reasons
    companions = dict(companions)
    for name, have in context.installed.items():
        if _companion(release, name) is None:
            warnings.append(
                f"{name} {have} is installed but has no release for torch {version}: it will "
                f"stop working (uninstall it, or --with {name} to keep a torch it pairs with)"
            )
        else:
            companions[name] = None
            reasons.append(f"{name} {have} is installed in the target environment: re-pinned")
    tag = f"+{variant}"
    if pypi:
        tag = ""
    elif context.platform in context.matrices.untagged_platforms:
        # Some wheels on the index carry no local tag (matrices/torch.toml [[untagged]]); a pin
        # without it matches either spelling, and --index-url still picks the build.
        tag = ""
        reasons.append(
            f"{context.platform} pins leave out the +variant tag; the index selects the build"
        )
    packages = [f"torch=={version}{tag}"]
    for name in companions:
        paired = _companion(release, name)
        family = _family_package(name)
        if family is None:
            packages.append(f"{name}=={paired}{tag}")
            reasons.append(f"{name} {paired} is the release paired with torch {version}")
            continue
        # Family wheels carry their own local labels (or none): the public version pins the
        # release and the index the plan routes it through picks the build.
        pair = family.pair(release.version)
        assert pair is not None  # _try_release refused the release otherwise
        packages.append(f"{name}=={pair.version}")
        reasons.append(
            f"{name} {pair.version} is the release built for torch {version} ({pair.evidence})"
        )
        if not pair.confirmed:
            warnings.append(
                f"{name} {pair.version} pairs with torch {pair.torch_text} by {name}'s documented "
                f"table ({pair.evidence}); its wheel does not pin torch, so this is unconfirmed"
            )
    if pypi:
        index_url = None
        find_links = None
        reasons.append(f"PyPI serves the {variant} build for {context.platform}")
    else:
        index_url = f"{context.base}/{variant}"
        find_links = None if context.links is None else f"{context.links}/{variant}"
        every = "every package" if companions else "torch"
        reasons.append(f"{every} from {find_links or index_url} (never an extra index)")
    facts = _facts(context, release, variant)
    reasons.append(
        "rests on "
        + "; ".join(f"{f.fact} ({'confirmed' if f.confirmed else 'inferred'})" for f in facts)
    )
    return Plan(
        torch=version,
        variant=variant.name,
        index_url=index_url,
        find_links=find_links,
        packages=tuple(packages),
        platform=context.platform,
        python=context.python,
        policy=context.request.policy,
        reasons=tuple(reasons),
        warnings=tuple(warnings),
        alternatives=tuple(_alternatives(context, release, variant)),
        facts=facts,
    )


def _strict(
    context: _Context, spec: SpecifierSet | None, companions: dict[str, SpecifierSet | None]
) -> str:
    """The alternative to a minor-version-compat choice: what --policy strict would pick."""
    strict = replace(context, request=replace(context.request, policy="strict"))
    try:
        plan = _stable_plan(strict, spec, companions, fallback=False)
    except NoCompatibleBuild:
        return "--policy strict: no build ≤ the driver's CUDA fits; upgrade the driver instead"
    return f"--policy strict: torch {plan.torch} {plan.variant} (no minor-version compatibility)"
