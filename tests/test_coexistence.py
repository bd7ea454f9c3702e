"""Coexistence analysis on synthetic data with known answers."""
import numpy as np
import pytest

from mlipprops import coexistence as cx


def series(rate, n0=500, natoms=1000, steps=400, dt=0.05, noise=3.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(steps) * dt
    n = np.clip(n0 + rate * t + rng.normal(0, noise, steps), 0, natoms)
    return t, n


@pytest.mark.parametrize("rate", [-8.0, 0.0, 5.0])
def test_growth_rate_recovers_the_slope(rate):
    t, n = series(rate)
    g = cx.growth_rate(t, n, 1000)
    assert abs(g.rate - rate) < 4 * g.error + 1e-9 and g.error < 0.5
    assert g.verdict == {-8.0: cx.MELTS, 0.0: cx.UNDECIDED, 5.0: cx.GROWS}[rate]


def test_growth_rate_stops_at_saturation():
    t, n = series(60.0, steps=400)  # all solid after ~8 of 20 ps: the flat end must not dilute the rate
    g = cx.growth_rate(t, n, 1000)
    assert g.rate == pytest.approx(60.0, rel=0.05) and g.verdict == cx.GROWS and g.end_fraction == 1.0


def trials_for(Tm, temps, k=0.4, noise=0.3, seed=1):
    rng = np.random.default_rng(seed)
    out = []
    for T in temps:
        r = -k * (T - Tm) + rng.normal(0, noise)
        verdict = cx.GROWS if r > 3 * noise else cx.MELTS if r < -3 * noise else cx.UNDECIDED
        out.append({"temperature": T, "rate": r, "rate_error": noise, "verdict": verdict})
    return out


def test_melting_point_is_the_zero_of_the_rate_with_an_honest_error():
    pulls = []
    for seed in range(200):
        trials = trials_for(1321.0, [1250, 1290, 1310, 1330, 1350, 1400], seed=seed)
        Tm, err = cx.melting_point(trials)
        pulls.append((Tm - 1321.0) / err)
    pulls = np.array(pulls)
    assert abs(pulls.mean()) < 0.3 and 0.7 < pulls.std() < 1.4


def test_melting_point_needs_a_bracket():
    with pytest.raises(ValueError):
        cx.melting_point(trials_for(1000.0, [1100, 1200]))


def test_next_temperatures_search_inside_the_bracket_without_repeats():
    first = cx.next_temperatures([], 1000.0, 1600.0, 2)
    assert len(first) == 2 and all(1000 < T < 1600 for T in first)
    trials = trials_for(1321.0, first + [1450.0])
    nxt = cx.next_temperatures(trials, 1000.0, 1600.0, 2)
    lo, hi = cx.bracket(trials)
    assert all(lo < T < hi for T in nxt) and not set(nxt) & {t["temperature"] for t in trials}
    # a search that keeps narrowing ends within the resolution
    for _ in range(30):
        nxt = cx.next_temperatures(trials, 1000.0, 1600.0, 1)
        if not nxt:
            break
        trials += trials_for(1321.0, nxt, noise=1e-3)
    Tm, err = cx.melting_point(trials)
    assert Tm == pytest.approx(1321.0, abs=1.0)


def test_order_cutoff_lies_in_the_widest_gap_between_neighbour_shells(datadir):
    """fcc: the 12 nearest; diamond: 4; bcc: 8 + 6; urea's C sublattice (the molecules' centres): the 14 within
    5.6 A, whose four shells lower symmetry splits (a first-shell-only rule took 6 and could not tell the liquid)."""
    from ase.build import bulk
    from ase.neighborlist import neighbor_list

    from mlipprops.properties.melt import shell_gap_cutoff
    from mlipprops.structure import read_structure

    urea = read_structure(str(datadir / "urea.cif"))
    cases = {"fcc": (bulk("Cu", "fcc", a=3.6), 12), "diamond": (bulk("Si", "diamond", a=5.43), 4),
             "bcc": (bulk("Fe", "bcc", a=2.87), 14), "urea C": (urea[urea.symbols == "C"], 14)}
    for name, (atoms, coordination) in cases.items():
        i, d = neighbor_list("id", atoms, 12.0)
        cutoff = shell_gap_cutoff(i, d)
        assert np.bincount(i[d < cutoff]).min() == coordination == np.bincount(i[d < cutoff]).max(), name
    # fcc as before: between 1.1 x the first shell and the second
    assert shell_gap_cutoff(*neighbor_list("id", bulk("Cu", "fcc", a=3.6), 12.0)) == pytest.approx(
        0.5 * (1.1 * 3.6 / 2 ** 0.5 + 3.6), abs=0.01)


def test_molecules_lost_needs_most_of_enough_trials():
    """The melt stops searching once molecules broke in most of four or more trials (fragments do not recrystallize);
    one broken trial, or too few trials, must not stop it; atomic systems (no molecules_intact) never do."""
    def trials(*intact):
        return [{"temperature": 300.0 + 10 * i, "verdict": cx.UNDECIDED, "molecules_intact": ok}
                for i, ok in enumerate(intact)]
    assert cx.molecules_lost(trials(False, False, False, True))
    assert not cx.molecules_lost(trials(False, False, False))  # too few to judge
    assert not cx.molecules_lost(trials(False, False, True, True))  # half is not most
    assert not cx.molecules_lost(trials(True, True, True, False, True))
    assert not cx.molecules_lost([{"temperature": 1000.0 + i, "verdict": cx.MELTS} for i in range(8)])


def test_liquid_fraction_is_the_melt_at_its_least_ordered():
    """The heating ramp's liquid, judged on the cooling ramp: a crystal that melted late (still 40 % solid-like as
    the cooling starts, then molten) is a liquid; an order parameter that sees solid everywhere is not fooled."""
    from mlipprops.properties.melt import COLUMNS, liquid_fraction
    n = 48
    late = np.concatenate([np.linspace(0.4, 0.02, 10), np.full(40, 0.02), np.linspace(0.02, 0.9, 30)]) * n
    always = np.full(80, 0.9) * n
    for nsolid, expected in ((late, 0.02), (always, 0.9)):
        samples = np.zeros((len(nsolid), len(COLUMNS)))
        samples[:, COLUMNS.index("nsolid")] = nsolid
        assert liquid_fraction(samples, n) == pytest.approx(expected, abs=1e-9)


def _urea_trials():
    """The bundled urea run that bracketed nothing (tests/data/urea_melt): 12 trials of 3 ps."""
    import json
    from pathlib import Path
    return json.loads((Path(__file__).parent / "data" / "urea_melt" / "melt_no_bracket.json").read_text())["trials"]


def test_a_t_m_outside_its_own_evidence_is_refused():
    """Relabel the urea 409.4 K trial (rate +3.0 +- 3.6) as growing: the line through the rates puts its zero
    below the trial that grew (about 350 K); that is no melting point."""
    trials = _urea_trials()
    for t in trials:
        if t["temperature"] == 409.4:
            t["verdict"] = cx.GROWS
    Tm, err = cx.melting_point(trials)
    assert Tm < 409.4  # what the fit alone says
    reason = cx.unsupported(trials, target_error=1000.0)
    assert reason and "contradicts" in reason and "409.4" in reason
    assert cx.unsupported(_urea_trials(), 1000.0).startswith("no bracket")


def test_a_supported_t_m_must_also_meet_the_target_error():
    trials = trials_for(1000.0, np.linspace(900, 1100, 9))
    Tm, err = cx.melting_point(trials)
    assert cx.unsupported(trials, target_error=2 * err) is None
    assert "target" in cx.unsupported(trials, target_error=err / 2)


def test_a_trial_whose_volume_still_drifts_is_not_trusted():
    t = np.linspace(0, 30, 300)
    n = 500 + np.random.default_rng(0).normal(0, 3, 300)  # the interface does not move
    settling = 1000 * (1 - 0.08 * (1 - np.exp(-t / 40)))  # the liquid half still densifying: -4 % in the run
    assert cx.volume_drifting(t, settling, n, 1000)[0]
    assert not cx.volume_drifting(t, 1000 + np.random.default_rng(1).normal(0, 1, 300), n, 1000)[0]
    # a volume that follows the moving interface (2 % per particle, 200 particles crystallize) is explained
    growing = 500 + 200 * t / 30
    assert not cx.volume_drifting(t, 1000 - 0.02 * (growing - 500), growing, 1000)[0]
    trials = trials_for(1000.0, np.linspace(900, 1100, 9))
    wrong = dict(trials[0], rate=-50.0, verdict=cx.MELTS, volume_drifting=True)  # melts at 900 K, but unsettled
    assert cx.melting_point(trials + [wrong]) == pytest.approx(cx.melting_point(trials))
