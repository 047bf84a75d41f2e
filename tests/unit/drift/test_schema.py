from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.drift.schema import SchemaMonitor, kind_of


def test_kinds():
    assert [kind_of(v) for v in (None, True, 1, 1.5, "s", [1], {"a": 1})] == [
        "null",
        "boolean",
        "number",
        "number",
        "string",
        "array",
        "object",
    ]


def test_configured_schema_counts_each_change_per_period():
    mon = SchemaMonitor(
        {"id": {"string"}, "x": {"number"}, "c": {"string"}}, optional=["c"], every=10
    )
    rows = [{"id": str(i), "x": float(i)} for i in range(10)]
    rows[3]["x"] = "3"  # type changed
    del rows[4]["x"]  # missing
    rows[5]["x"] = None  # missing (null)
    rows[6]["extra"] = 1  # new field
    rows[7]["c"] = None  # optional: not missing
    found = {(f.feature, f.statistic): (f.value, f.level) for f in mon.observe(rows, range(10))}
    assert found == {
        ("x", "type_changed_rate"): (0.1, 2),
        ("x", "missing_rate"): (0.2, 2),
        ("extra", "new_field_rate"): (0.1, 2),
    }
    # The next period is clean: each change is reported once more, at 0, then no more.
    clean = [{"id": str(i), "x": 1.0} for i in range(10)]
    again = {
        (f.feature, f.statistic): (f.value, f.level) for f in mon.observe(clean, range(10, 20))
    }
    assert again == {k: (0.0, 0) for k in found}
    assert mon.observe(clean, range(20, 30)) == []


def test_learned_schema_in_inferred_mode():
    mon = SchemaMonitor(None, every=50, reference_size=100)
    ref = [{"id": i, "a": 1.0, "rare": 1 if i == 3 else None} for i in range(100)]
    assert mon.observe(ref, range(100)) == [] and mon.ready
    assert mon.expected == {"id": frozenset({"number"}), "a": frozenset({"number"})}
    later = [{"id": i, "a": "x" if i % 10 == 0 else 2.0, "rare": 5} for i in range(50)]
    found = {(f.feature, f.statistic): f.value for f in mon.observe(later, range(100, 150))}
    # "rare" was seen in the reference: optional, neither new nor missing.
    assert found == {("a", "type_changed_rate"): 0.1}


def test_unknown_field_names_are_bounded():
    mon = SchemaMonitor({"id": {"number"}}, every=100, max_new_fields=3)
    rows = [{"id": i, f"k{i}": 1} for i in range(100)]
    found = mon.observe(rows, range(100))
    assert sorted(f.feature for f in found) == ["(other)", "k0", "k1", "k2"]
    assert next(f.value for f in found if f.feature == "(other)") == 0.97


@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=30))
@settings(max_examples=30, deadline=None)
def test_batch_boundaries_do_not_change_findings(sizes):
    rows = [
        {"id": i, "x": "s" if i % 7 == 0 else 1.0, **({"n": 1} if i % 11 == 0 else {})}
        for i in range(300)
    ]
    whole = SchemaMonitor(None, every=30, reference_size=40).observe(rows, range(300))
    mon = SchemaMonitor(None, every=30, reference_size=40)
    split, lo = [], 0
    for size in sizes:
        split += mon.observe(rows[lo : lo + size], range(lo, min(lo + size, 300)))
        lo += size
    split += mon.observe(rows[lo:], range(lo, 300)) if lo < 300 else []
    assert split == whole


def test_a_stable_schema_never_alarms():
    mon = SchemaMonitor({"id": {"number"}, "x": {"number"}}, every=100)
    assert mon.observe([{"id": i, "x": i * 0.5} for i in range(5000)], range(5000)) == []


def test_one_record_with_many_new_fields_is_bounded_and_its_rate_is_a_share():
    mon = SchemaMonitor({"id": {"number"}}, every=10, max_new_fields=20)
    flood = {"id": 0, **{f"f{i}": 1 for i in range(10_000)}}
    rows = [flood] + [{"id": i} for i in range(1, 10)]
    found = mon.observe(rows, range(10))
    names = [f.feature for f in found]
    assert len(found) == 21 and names.count("(other)") == 1
    assert sorted(names) == sorted(["(other)", *(f"f{i}" for i in range(20))])  # the first 20
    assert {f.value for f in found} == {0.1}  # one record in ten: every rate is a share


def test_new_field_rates_are_shares_of_records():
    mon = SchemaMonitor({"id": {"number"}}, every=4, max_new_fields=1)
    rows = [{"id": i, "a": 1, f"x{i}": 1, f"y{i}": 1} for i in range(4)]
    found = {f.feature: f.value for f in mon.observe(rows, range(4))}
    assert found == {"a": 1.0, "(other)": 1.0}
    assert all(0.0 <= f <= 1.0 for f in found.values())


def test_long_field_names_are_never_learned_nor_reported_by_name():
    long = "n" * 500
    mon = SchemaMonitor(None, every=10, reference_size=10, max_name_length=100)
    mon.observe([{"id": i, long: 1.0} for i in range(10)], range(10))
    assert mon.expected == {"id": frozenset({"number"})}
    found = mon.observe([{"id": i, long: 1.0} for i in range(10, 20)], range(10, 20))
    assert [(f.feature, f.statistic, f.value) for f in found] == [
        ("(other)", "new_field_rate", 1.0)
    ]


def test_a_learned_schema_tracks_a_bounded_number_of_names():
    mon = SchemaMonitor(None, every=10, reference_size=100, max_fields=50)
    rows = [{"id": i, **{f"r{i}_{j}": 1 for j in range(100)}} for i in range(100)]
    mon.observe(rows, range(100))
    assert mon.expected == {"id": frozenset({"number"})}
    assert len(mon._ref_seen) == 50
