#!/usr/bin/env python3
"""Which of fanflow's adaptations of moto (local/moto_patches/) still hold on another moto.

Installs the project and the given moto version in a temporary venv, runs the adaptations'
tests there (tests/unit/test_patches_*.py) with the version check off
(FANFLOW_MOTO_VERSION_CHECK=off), and prints, per concern and per adaptation, which tests hold
and which fail. A failing `test_unpatched_*` means moto changed what the adaptation works
around (it may be unnecessary now, or fight moto); a failing `test_patched_*` means the
adaptation no longer gives the behaviour the embedded runtime relies on.

    python scripts/check_moto_adaptations.py 5.2.6
    python scripts/check_moto_adaptations.py 5.2.6 --dry-run
    python scripts/check_moto_adaptations.py 5.2.5 --venv .venv    # the pinned moto, this venv

Exit status: 0 if every test holds, 1 if some fail, 2 if the venv could not be set up.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_DIR = ROOT / "tests" / "unit"
TEST_GLOB = "test_patches_*.py"
VERSION_CHECK_VARIABLE = "FANFLOW_MOTO_VERSION_CHECK"  # read by local.moto_patches.patching.check_version
# The pin's own tests: with the check off they cannot hold, whatever the version.
VERSION_PIN_TESTS = "not check_version"
HEADING = re.compile(r"^# -- (\d+[a-z]?)\b")


def moto_requirement(version: str) -> str:
    """moto with the extras pyproject.toml asks for, at `version`."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for requirement in project["project"]["dependencies"]:
        match = re.match(r"^moto(\[[^\]]*\])?\s*[=<>!~]", requirement)
        if match:
            return f"moto{match.group(1) or ''}=={version}"
    return f"moto=={version}"


def adaptation_of_tests(path: Path) -> dict[str, str]:
    """Each test function of a module, by name, to the adaptation heading it sits under
    ("# -- 6. DynamoDB ..."); tests before any numbered heading go under "-"."""
    current = "-"
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        heading = HEADING.match(line)
        if heading:
            current = heading.group(1)
        elif line.startswith("def test_"):
            found[line[4:].split("(", 1)[0]] = current
    return found


def run(command: list[str], *, dry_run: bool, env: dict[str, str] | None = None) -> int:
    print("$ " + shlex.join(command), flush=True)
    if dry_run:
        return 0
    return subprocess.call(command, cwd=ROOT, env=env)


def report(junit: Path) -> bool:
    """Prints the results per module and adaptation; True if every test held."""
    outcomes: dict[str, dict[str, str]] = defaultdict(dict)
    for case in ET.parse(junit).iter("testcase"):
        module = case.get("classname", "").rsplit(".", 1)[-1]
        name = case.get("name", "")
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        if case.find("skipped") is not None:
            outcome = "skipped"
        elif failure is not None:
            message = (failure.get("message") or "").strip()
            outcome = f"FAILS: {message.splitlines()[0][:100]}" if message else "FAILS"
        else:
            outcome = "holds"
        outcomes[module][name] = outcome
    all_hold = True
    for module in sorted(outcomes):
        headings = adaptation_of_tests(TEST_DIR / f"{module}.py")
        by_adaptation: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for name, outcome in outcomes[module].items():
            by_adaptation[headings.get(name.split("[", 1)[0], "-")].append((name, outcome))
        held = sum(1 for results in by_adaptation.values() for _, outcome in results if outcome == "holds")
        total = sum(len(results) for results in by_adaptation.values())
        concern = module.removeprefix("test_patches_")
        print(f"\n{concern}: {held} of {total} tests hold")
        for adaptation in sorted(by_adaptation, key=lambda key: (key == "-", int(re.sub(r"\D", "", key) or 0), key)):
            results = by_adaptation[adaptation]
            failing = [(name, outcome) for name, outcome in results if outcome.startswith("FAILS")]
            label = "install/uninstall" if adaptation == "-" else f"adaptation {adaptation}"
            print(f"  {label}: {sum(outcome == 'holds' for _, outcome in results)} of {len(results)} hold")
            for name, outcome in failing:
                all_hold = False
                print(f"    {name}: {outcome}")
    return all_hold


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[1].split("\n\n    python", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  %(prog)s 5.2.6\n  %(prog)s 5.2.6 --dry-run\n  %(prog)s 5.2.5 --venv .venv\n\n"
               "It needs the package registry (pip), and takes a few minutes to set up the venv.",
    )
    parser.add_argument("moto_version", metavar="MOTO_VERSION", help="the moto version to check, e.g. 5.2.6")
    parser.add_argument("--venv", type=Path,
                        help="use this venv instead of a temporary one: the project is not reinstalled, "
                             "and its moto is replaced by MOTO_VERSION")
    parser.add_argument("--keep", action="store_true", help="keep the temporary venv, and say where it is")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("pytest_args", nargs="*", metavar="PYTEST_ARG",
                        help="more pytest arguments, after `--` (e.g. -- -x); a -k replaces the one that "
                             "leaves out the version pin's own tests")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="fanflow-moto-check-"))
    venv = args.venv.resolve() if args.venv else work / "venv"
    python = str(venv / "bin" / "python")
    try:
        if args.venv is None and (
            run([sys.executable, "-m", "venv", str(venv)], dry_run=args.dry_run)
            or run([python, "-m", "pip", "install", "-q", "-e", ".[dev]"], dry_run=args.dry_run)
        ):
            print("could not set up the venv", file=sys.stderr)
            return 2
        # pip warns that the project pins another moto: that is the point
        if run([python, "-m", "pip", "install", "-q", moto_requirement(args.moto_version)], dry_run=args.dry_run):
            print(f"could not install moto {args.moto_version}", file=sys.stderr)
            return 2
        junit = work / "results.xml"
        env = {**os.environ, VERSION_CHECK_VARIABLE: "off",
               "FANFLOW_CACHE_DIR": os.environ.get("FANFLOW_CACHE_DIR", str(work / "cache"))}
        tests = sorted(str(path.relative_to(ROOT)) for path in TEST_DIR.glob(TEST_GLOB))
        run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", VERSION_PIN_TESTS,
             f"--junitxml={junit}", *tests, *args.pytest_args], dry_run=args.dry_run, env=env)
        if args.dry_run:
            return 0
        if not junit.exists():
            print("pytest wrote no results", file=sys.stderr)
            return 2
        print(f"\nfanflow's adaptations on moto {args.moto_version}:")
        return 0 if report(junit) else 1
    finally:
        if args.keep and not args.dry_run:
            print(f"(kept: {work})")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
