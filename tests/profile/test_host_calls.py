"""``profile.host_calls.timed_calls`` on a hand-made module: call counts by hand, times
against known sleeps, nesting, every kind of attribute put back, refusals that wrap nothing.
(Its targets in the patched sglang: ``tests/patching/test_patched_calls.py``.)"""

from __future__ import annotations

import sys
import time
import types

import pytest

from sglang_ext.profile.host_calls import timed_calls

MOD = "sglang_ext_test_host_calls_toy"


@pytest.fixture
def toy(monkeypatch):
    mod = types.ModuleType(MOD)

    class Toy:
        def outer(self, n):
            for _ in range(n):
                self.inner()
            time.sleep(0.02)
            return mod.free()  # looked up in the module at call time

        def inner(self):
            time.sleep(0.01)

        @classmethod
        def make(cls):
            return cls()

        @staticmethod
        def twice(x):
            return 2 * x

    def free():
        time.sleep(0.005)
        return 7

    mod.Toy, mod.free = Toy, free
    monkeypatch.setitem(sys.modules, MOD, mod)
    return mod


TARGETS = [
    ("outer", f"{MOD}:Toy.outer"),
    ("outer.inner", f"{MOD}:Toy.inner"),
    ("outer.free", f"{MOD}:free"),  # looked up in the module, as outer looks it up
    ("make", f"{MOD}:Toy.make"),
    ("twice", f"{MOD}:Toy.twice"),
]


def test_counts_times_and_nesting(toy):
    originals = dict(toy.Toy.__dict__), toy.free
    with timed_calls(TARGETS) as t:
        assert toy.Toy.make().outer(3) == 7
        assert toy.Toy.twice(4) == 8 and toy.Toy().twice(5) == 10
    assert {k: c.calls for k, c in t.items()} == {
        "outer": 1, "outer.inner": 3, "outer.free": 1, "make": 1, "twice": 2
    }  # fmt: skip
    ms = {k: c.ns / 1e6 for k, c in t.items()}
    assert 30 <= ms["outer.inner"] < 1000  # three 10 ms sleeps
    assert 5 <= ms["outer.free"] < 1000
    # inclusive: outer holds its callees and its own 20 ms
    assert ms["outer"] >= ms["outer.inner"] + ms["outer.free"] + 20
    # put back as they were: the same function, classmethod and staticmethod objects
    assert dict(toy.Toy.__dict__) == originals[0] and toy.free is originals[1]


def test_within_counts_only_the_calls_inside_the_gate(toy):
    with timed_calls(TARGETS, within="outer") as t:
        toy.Toy().inner()  # outside any outer call: runs, untimed
        toy.free()
        assert toy.Toy().outer(2) == 7
        toy.Toy().inner()
    assert {k: c.calls for k, c in t.items()} == {
        "outer": 1, "outer.inner": 2, "outer.free": 1, "make": 0, "twice": 0
    }  # fmt: skip
    assert 20 <= t["outer.inner"].ns / 1e6 < t["outer"].ns / 1e6
    with pytest.raises(ValueError, match="within='nope' is none of the labels"):
        with timed_calls(TARGETS, within="nope"):
            pass


def test_restored_when_the_block_raises(toy):
    before = toy.Toy.__dict__["inner"]
    with pytest.raises(RuntimeError, match="boom"), timed_calls(TARGETS):
        assert toy.Toy.__dict__["inner"] is not before
        raise RuntimeError("boom")
    assert toy.Toy.__dict__["inner"] is before


@pytest.mark.parametrize(
    "bad, message",
    [
        (f"{MOD}:Toy.missing", r"no 'missing' in its class body"),
        (f"{MOD}:Nope.outer", r"has no attribute 'Nope'"),
        (f"{MOD}:gone", r"no 'gone' in it"),
        (f"{MOD}.Toy.outer", r"expected 'module:attribute'"),
    ],
)
def test_a_bad_target_is_named_and_wraps_nothing(toy, bad, message):
    before = dict(toy.Toy.__dict__)
    with pytest.raises(ValueError, match=message), timed_calls([*TARGETS, ("bad", bad)]):
        pass
    assert dict(toy.Toy.__dict__) == before


def test_an_inherited_method_is_refused_rather_than_wrapped_on_the_parent(toy):
    class Child(toy.Toy):
        pass

    toy.Child = Child
    with pytest.raises(ValueError, match="inherited"), timed_calls([("c", f"{MOD}:Child.inner")]):
        pass


def test_duplicate_labels_are_refused(toy):
    with pytest.raises(ValueError, match="duplicate"), timed_calls([TARGETS[0], TARGETS[0]]):
        pass
