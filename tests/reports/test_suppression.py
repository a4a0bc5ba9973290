"""Small-cell suppression on hand-made tables: what is hidden, and why."""

from __future__ import annotations

from decimal import Decimal

from halsosamtal.reports.suppression import Protector


def test_counts_below_the_threshold_are_shown_as_less_than_it_and_zero_is_shown() -> None:
    p = Protector(5)
    cells = [p.cell(v) for v in (0, 1, 4, 5, 120)]
    assert [p.count(c).shown for c in cells] == ["0", "<5", "<5", "5", "120"]
    assert [p.count(c).value for c in cells] == [0, None, None, 5, 120]
    assert Protector(3).count(Protector(3).cell(2)).shown == "<3", "the threshold is configurable"


def test_a_lone_small_cell_in_a_column_takes_the_next_smallest_with_it() -> None:
    p = Protector(5)
    total = p.cell(3 + 9 + 40)
    groups = [p.cell(3), p.cell(9), p.cell(40)]
    p.relate(total, groups)
    p.solve()
    # 52 - 9 - 40 would give the 3 away: the 9 goes too, shown as ".." (it is not small).
    assert [p.count(c).shown for c in (*groups, total)] == ["<5", "..", "40", "52"]


def test_two_small_cells_protect_each_other() -> None:
    p = Protector(5)
    total = p.cell(2 + 3 + 40)
    groups = [p.cell(2), p.cell(3), p.cell(40)]
    p.relate(total, groups)
    p.solve()
    assert [p.count(c).shown for c in groups] == ["<5", "<5", "40"]


def test_a_small_hidden_complement_hides_its_partner() -> None:
    """38 of 40 smoke: "not smoking" (2) is never shown, but would be 40 - 38."""
    p = Protector(5)
    completed = p.cell(40)
    unhealthy = p.cell(38)
    p.relate(completed, [unhealthy, p.cell(2, hidden=True)])
    p.solve()
    assert p.count(unhealthy).shown == ".."
    assert p.count(completed).shown == "40"


def test_suppression_spreads_until_no_relation_gives_a_cell_away() -> None:
    # Two breakdowns share the total; a cell suppressed for one relation joins others.
    p = Protector(5)
    total = p.cell(60)
    by_unit = [p.cell(2), p.cell(28), p.cell(30)]
    by_sex = [p.cell(31), p.cell(29)]
    p.relate(total, by_unit)
    p.relate(total, by_sex)
    p.solve()
    for relation in p.relations:
        assert sum(c.unknown for c in [relation.total, *relation.members]) != 1


def test_rates_and_means_from_a_suppressed_count_are_suppressed_with_its_mark() -> None:
    p = Protector(5)
    small, big, other = p.cell(3), p.cell(50), p.cell(7)
    other.state = "secondary"
    assert (p.rate(small, big).value, p.rate(small, big).shown) == (None, "<5")
    assert p.rate(big, other).shown == ".."
    assert p.rate(p.cell(1 * 0 + 20), big).value == 0.4
    assert p.rate(p.cell(0), p.cell(0)).value is None, "no denominator: no rate, nothing hidden"
    assert p.mean(Decimal("25.55"), big, Decimal("0.1")).value == 25.6, "half up"
    assert p.mean(Decimal("25.5"), small, Decimal("0.1")).suppressed
