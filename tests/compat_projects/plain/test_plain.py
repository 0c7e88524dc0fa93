from __future__ import annotations

import json
import os

#: Set per test or per run by pytest and xdist themselves (which worker runs it varies).
OWN = ("PYTEST_CURRENT_TEST", "PYTEST_XDIST_WORKER", "PYTEST_XDIST_TESTRUNUID")


def test_environment_seen_by_tests():
    """The whole environment a test sees, for the runner to compare with -p no:envsetup."""
    seen = {k: v for k, v in os.environ.items() if k not in OWN}
    with open("env.json", "w") as out:
        json.dump(seen, out, sort_keys=True)


def test_0():
    pass


def test_1():
    pass


def test_2():
    pass


def test_3():
    pass


def test_4():
    pass


def test_5():
    pass


def test_6():
    pass


def test_7():
    pass


def test_8():
    pass


def test_9():
    pass
