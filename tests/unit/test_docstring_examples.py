"""Every docstring example of the ``analysis`` and ``data`` packages runs and prints what it
says (the analysts' documentation must not drift from the code).

The examples run with the standard :mod:`doctest` rules (as ``pytest --doctest-modules``
would), one test per module, so a failure names the module and shows the example's output.
"""

from __future__ import annotations

import doctest
import importlib
import io
import pkgutil

import pytest

import analysis
import data

PACKAGES = (analysis, data)


def _module_names() -> list[str]:
    names = []
    for package in PACKAGES:
        names.append(package.__name__)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
            if not info.name.rsplit(".", 1)[-1].startswith("__"):
                names.append(info.name)
    return sorted(names)


MODULES = _module_names()


def test_the_packages_have_examples_to_run():
    examples = sum(len(test.examples) for name in MODULES
                   for test in doctest.DocTestFinder().find(importlib.import_module(name)))
    assert examples >= 300, examples  # 386 in December 2026: a collapse means lost examples


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    report = io.StringIO()
    runner = doctest.DocTestRunner(verbose=False)
    for test in doctest.DocTestFinder().find(module):
        runner.run(test, out=report.write)
    assert runner.failures == 0, report.getvalue()
