"""Check the pinned requirements against a local copy of the OSV vulnerability database.

``python -m tools.osv_check --osv PATH [REQUIREMENTS ...]``

No package registry this project can reach ships a current vulnerability database (PyPI's
``safety-db`` stopped in 2021; the npm packages ``@renovatebot/osv-offline*`` download the data
at run time), and ``pip-audit`` needs an online service. This check therefore works offline on
a database the operator copies in: the OSV export of the PyPI ecosystem (``PyPI/all.zip``, one
JSON record per advisory, as published by osv.dev), as the zip file or a folder of its JSON
files. See docs/security.md, "Dependencies".

A pin ``name==version`` is affected by an advisory when the version is listed in the
advisory's ``affected[].versions``, or lies in an ``ECOSYSTEM`` range: at or after an
``introduced`` event and before the next ``fixed`` event (or at or before ``last_affected``),
compared as PEP 440 versions. Withdrawn advisories are skipped. Only exact pins are checked
(the requirements files pin every package); anything else is reported as not checked.

Exit status: 0 no known vulnerability, 1 some pins are affected, 2 no usable database (never
silently green).

Examples
--------
>>> advisory = {"id": "X-1", "affected": [{"package": {"ecosystem": "PyPI", "name": "Demo_Pkg"},
...     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.2"}]}]}]}
>>> affects(advisory, "demo-pkg", "1.1"), affects(advisory, "demo-pkg", "1.2")
(True, False)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REQUIREMENTS = (ROOT / "requirements.txt", ROOT / "requirements-dev.txt")
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;#]+)")


def normalise(name: str) -> str:
    """PEP 503 name: ``Dash_Bootstrap.Components`` -> ``dash-bootstrap-components``."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclasses.dataclass(frozen=True)
class Finding:
    package: str
    version: str
    advisory: str
    aliases: tuple[str, ...]
    fixed: tuple[str, ...]
    summary: str


def read_pins(paths: Iterable[Path]) -> tuple[dict[str, str], list[str]]:
    """``{normalised name: version}`` of the exact pins in requirements files (following
    ``-r`` includes), and the requirement lines that are not exact pins (not checked)."""
    pins: dict[str, str] = {}
    unchecked: list[str] = []
    seen: set[Path] = set()

    def read(path: Path) -> None:
        path = path.resolve()
        if path in seen:
            return
        seen.add(path)
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.split(" #")[0].strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith(("-r ", "--requirement ")):
                read(path.parent / line.split(maxsplit=1)[1])
                continue
            match = _PIN.match(line)
            if match:
                pins[normalise(match.group(1))] = match.group(3)
            else:
                unchecked.append(line)

    for path in paths:
        read(Path(path))
    return pins, unchecked


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _in_ranges(ranges: list[dict], version: Version) -> bool:
    for entry in ranges:
        if entry.get("type") != "ECOSYSTEM":
            continue
        introduced: Version | None = None
        for event in entry.get("events", []):
            if "introduced" in event:
                introduced = Version("0") if event["introduced"] == "0" else _version(
                    event["introduced"])
            elif introduced is not None and "fixed" in event:
                fixed = _version(event["fixed"])
                if fixed is not None and introduced <= version < fixed:
                    return True
                introduced = None
            elif introduced is not None and "last_affected" in event:
                last = _version(event["last_affected"])
                if last is not None and introduced <= version <= last:
                    return True
                introduced = None
        if introduced is not None and version >= introduced:  # no fix yet
            return True
    return False


def affects(advisory: dict, package: str, version: str) -> bool:
    """Whether the OSV ``advisory`` affects ``package`` (normalised name) at ``version``."""
    if advisory.get("withdrawn"):
        return False
    parsed = _version(version)
    for affected in advisory.get("affected", []):
        info = affected.get("package", {})
        if info.get("ecosystem") != "PyPI" or normalise(info.get("name", "")) != package:
            continue
        if version in affected.get("versions", []):
            return True
        if parsed is not None and _in_ranges(affected.get("ranges", []), parsed):
            return True
    return False


def _fixed_versions(advisory: dict, package: str) -> tuple[str, ...]:
    fixed = []
    for affected in advisory.get("affected", []):
        if normalise(affected.get("package", {}).get("name", "")) != package:
            continue
        for entry in affected.get("ranges", []):
            fixed += [event["fixed"] for event in entry.get("events", []) if "fixed" in event]
    return tuple(dict.fromkeys(fixed))


def read_advisories(source: Path) -> Iterator[dict]:
    """OSV records from a zip file (osv.dev's ``PyPI/all.zip``) or a folder of JSON files."""
    if source.is_dir():
        for path in sorted(source.rglob("*.json")):
            yield json.loads(path.read_text(encoding="utf-8"))
        return
    with zipfile.ZipFile(source) as archive:
        for name in archive.namelist():
            if name.endswith(".json"):
                yield json.loads(archive.read(name))


def check(pins: dict[str, str], advisories: Iterable[dict]) -> tuple[list[Finding], int, str]:
    """Findings for ``pins``, the number of advisories read and the newest ``modified`` date."""
    findings: list[Finding] = []
    count = 0
    newest = ""
    for advisory in advisories:
        count += 1
        newest = max(newest, str(advisory.get("modified", "")))
        names = {normalise(a.get("package", {}).get("name", ""))
                 for a in advisory.get("affected", [])}
        for package in names & pins.keys():
            if affects(advisory, package, pins[package]):
                findings.append(Finding(package, pins[package], str(advisory.get("id")),
                                        tuple(advisory.get("aliases", [])),
                                        _fixed_versions(advisory, package),
                                        str(advisory.get("summary", ""))[:100]))
    return findings, count, newest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.osv_check", description=__doc__.split(
        "\n")[0])
    parser.add_argument("requirements", nargs="*", type=Path,
                        help="requirements files (default: requirements.txt, "
                        "requirements-dev.txt)")
    parser.add_argument("--osv", type=Path, required=True,
                        help="the OSV PyPI database: all.zip or a folder of its JSON files")
    args = parser.parse_args(argv)
    if not args.osv.exists():
        print(f"error: no OSV database at {args.osv}", file=sys.stderr)
        return 2
    pins, unchecked = read_pins(args.requirements or DEFAULT_REQUIREMENTS)
    try:
        findings, count, newest = check(pins, read_advisories(args.osv))
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        print(f"error: cannot read the OSV database {args.osv}: {error}", file=sys.stderr)
        return 2
    if count == 0:
        print(f"error: the OSV database {args.osv} holds no advisories", file=sys.stderr)
        return 2
    print(f"{len(pins)} pinned packages checked against {count:,} OSV advisories "
          f"(newest modified {newest or 'unknown'})")
    for line in unchecked:
        print(f"  not checked (not an exact pin): {line}")
    for finding in sorted(findings, key=lambda f: (f.package, f.advisory)):
        aliases = f" ({', '.join(finding.aliases)})" if finding.aliases else ""
        fixed = ", ".join(finding.fixed) or "no fixed version"
        print(f"  {finding.package}=={finding.version}: {finding.advisory}{aliases}; fixed in "
              f"{fixed}. {finding.summary}")
    if findings:
        print(f"{len(findings)} known vulnerabilities in the pinned versions")
        return 1
    print("no known vulnerability in the pinned versions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
