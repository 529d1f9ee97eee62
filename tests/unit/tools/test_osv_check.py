"""The offline dependency check against a local OSV database (issue 13, item 7).

The advisories here are made up for the test (ids ``TEST-…``), in OSV's schema
(https://ossf.github.io/osv-schema/): the check must find what they describe and nothing else.
"""

from __future__ import annotations

import json
import zipfile

import pytest

from tools.osv_check import affects, check, main, read_pins


def advisory(ident, name, *, events=None, versions=(), ecosystem="PyPI", withdrawn=None):
    record = {"id": ident, "modified": "2026-11-30T00:00:00Z", "aliases": [f"CVE-{ident}"],
              "summary": f"test advisory {ident}",
              "affected": [{"package": {"ecosystem": ecosystem, "name": name},
                            "versions": list(versions),
                            "ranges": [{"type": "ECOSYSTEM", "events": events}] if events else []}]}
    if withdrawn:
        record["withdrawn"] = withdrawn
    return record


@pytest.mark.parametrize("events, version, expected", [
    ([{"introduced": "0"}, {"fixed": "2.0"}], "1.9.9", True),
    ([{"introduced": "0"}, {"fixed": "2.0"}], "2.0", False),
    ([{"introduced": "1.5"}, {"fixed": "2.0"}], "1.4", False),
    ([{"introduced": "1.0"}, {"last_affected": "1.3"}], "1.3", True),
    ([{"introduced": "1.0"}, {"last_affected": "1.3"}], "1.3.1", False),
    ([{"introduced": "3.0"}], "9.1", True),  # no fix yet
    ([{"introduced": "0"}, {"fixed": "1.0"}, {"introduced": "2.0"}, {"fixed": "2.1"}], "1.5", False),
    ([{"introduced": "0"}, {"fixed": "1.0"}, {"introduced": "2.0"}, {"fixed": "2.1"}], "2.0.5", True),
    ([{"introduced": "0"}, {"fixed": "2.0rc1"}], "2.0", False),  # PEP 440, not text order
    ([{"introduced": "0"}, {"fixed": "10.0"}], "9.0", True),
])
def test_ranges_follow_osv_events_and_pep_440(events, version, expected):
    assert affects(advisory("T", "pkg", events=events), "pkg", version) is expected


def test_listed_versions_names_ecosystems_and_withdrawn_advisories():
    listed = advisory("T", "Some_Pkg", versions=["1.0.1"])
    assert affects(listed, "some-pkg", "1.0.1") and not affects(listed, "some-pkg", "1.0.2")
    assert not affects(advisory("T", "pkg", versions=["1"], ecosystem="npm"), "pkg", "1")
    assert not affects(advisory("T", "pkg", versions=["1"], withdrawn="2026-01-01"), "pkg", "1")


def test_read_pins_follows_includes_and_lists_what_it_cannot_check(tmp_path):
    (tmp_path / "base.txt").write_text("# runtime\ndash[diskcache]==4.4.1\nPyYAML==6.0  # x\n")
    (tmp_path / "dev.txt").write_text("-r base.txt\npytest>=8\nruff==0.17.5\n")
    pins, unchecked = read_pins([tmp_path / "dev.txt"])
    assert pins == {"dash": "4.4.1", "pyyaml": "6.0", "ruff": "0.17.5"}
    assert unchecked == ["pytest>=8"]


def test_the_projects_requirements_are_all_exact_pins():
    from tools.osv_check import DEFAULT_REQUIREMENTS

    pins, unchecked = read_pins(DEFAULT_REQUIREMENTS)
    assert unchecked == [] and pins["dash"] and pins["openpyxl"]


def _database(folder, records):
    folder.mkdir()
    for record in records:
        (folder / f"{record['id']}.json").write_text(json.dumps(record))
    return folder


def test_command_reports_affected_pins_and_exit_status(tmp_path, capsys):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("openpyxl==3.1.5\npandas==2.3.3\n")
    database = _database(tmp_path / "osv", [
        advisory("TEST-1", "openpyxl", events=[{"introduced": "0"}, {"fixed": "3.1.6"}]),
        advisory("TEST-2", "pandas", events=[{"introduced": "0"}, {"fixed": "2.0"}]),
        advisory("TEST-3", "flask", versions=["3.1.3"]),
    ])
    assert main(["--osv", str(database), str(requirements)]) == 1
    out = capsys.readouterr().out
    assert "2 pinned packages checked against 3 OSV advisories" in out
    assert "openpyxl==3.1.5: TEST-1 (CVE-TEST-1); fixed in 3.1.6" in out
    assert "TEST-2" not in out and "TEST-3" not in out
    requirements.write_text("openpyxl==3.1.6\npandas==2.3.3\n")
    assert main(["--osv", str(database), str(requirements)]) == 0
    assert "no known vulnerability" in capsys.readouterr().out


def test_command_reads_the_zip_export_and_is_never_silently_green(tmp_path, capsys):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("openpyxl==3.1.5\n")
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("TEST-1.json", json.dumps(
            advisory("TEST-1", "openpyxl", versions=["3.1.5"])))
    assert main(["--osv", str(archive), str(requirements)]) == 1
    assert main(["--osv", str(tmp_path / "missing.zip"), str(requirements)]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--osv", str(empty), str(requirements)]) == 2
    assert "holds no advisories" in capsys.readouterr().err


def test_check_counts_advisories_and_the_newest_date():
    findings, count, newest = check({"pkg": "1.0"}, [advisory("A", "pkg", versions=["1.0"]),
                                                     advisory("B", "other", versions=["1.0"])])
    assert [f.advisory for f in findings] == ["A"] and count == 2
    assert newest == "2026-11-30T00:00:00Z"
