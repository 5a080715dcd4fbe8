"""preferences: Bradley–Terry likelihood, fit and recovery of known rewards; policy gradient vs MLE."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from course_utils import preferences as pf
from course_utils.assessment import assignments

TRUE = torch.tensor([0.0, 1.0, 2.0, -1.0, 0.5, -0.3], dtype=torch.float64)


def test_probability_and_log_likelihood_by_hand():
    assert pf.preference_probability(1.0, 0.0) == pytest.approx(1 / (1 + math.exp(-1)))
    assert pf.preference_probability(0.3, 0.3) == 0.5
    ll = pf.bradley_terry_log_likelihood([0.0, 1.0, 3.0], [1, 2, 0], [0, 1, 2])
    expected = math.log(1 / (1 + math.exp(-1))) + math.log(1 / (1 + math.exp(-2))) + \
        math.log(1 / (1 + math.exp(3)))
    assert ll == pytest.approx(expected, rel=1e-12)


def test_log_likelihood_is_invariant_to_a_shift_but_not_a_scale():
    g = torch.Generator().manual_seed(0)
    w, lo = pf.sample_comparisons(TRUE, 200, g)
    base = pf.bradley_terry_log_likelihood(TRUE, w, lo)
    assert pf.bradley_terry_log_likelihood(TRUE + 7.5, w, lo) == pytest.approx(base, rel=1e-12)
    assert abs(pf.bradley_terry_log_likelihood(2 * TRUE, w, lo) - base) > 1.0


def test_log_likelihood_stays_finite_for_large_reward_gaps():
    ll = pf.bradley_terry_log_likelihood([0.0, 800.0], [0], [1])  # log σ(−800) ≈ −800, not −inf
    assert ll == pytest.approx(-800.0)


@pytest.mark.parametrize("winners, losers, message", [
    ([0, 1], [1], "same length"), ([0], [0], "itself"), ([0], [9], "indices"),
    ([0.5], [1], "indices"), ([], [], "empty"), ("ab", [1, 2], "string"),
])
def test_bad_comparisons_are_rejected(winners, losers, message):
    with pytest.raises(ValueError, match=message):
        pf.bradley_terry_log_likelihood([0.0, 1.0, 2.0], winners, losers)


def test_sampled_win_rates_match_the_model():
    g = torch.Generator().manual_seed(1)
    r = torch.tensor([0.0, 1.0], dtype=torch.float64)
    n = 20000
    w, lo = pf.sample_comparisons(r, n, g)
    assert ((w == 0) ^ (lo == 0)).all()  # every comparison is between the two items
    p = pf.preference_probability(1.0, 0.0)
    wins = int((w == 1).sum())
    assert abs(wins - n * p) < 5 * math.sqrt(n * p * (1 - p))


def test_pairs_are_uniform_over_distinct_items():
    g = torch.Generator().manual_seed(2)
    n, k = 30000, len(TRUE)
    w, lo = pf.sample_comparisons(torch.zeros(k, dtype=torch.float64), n, g)
    counts = torch.bincount(torch.cat([w, lo]), minlength=k).double()
    p = 2 / k  # each comparison involves two of the k items
    assert ((counts - n * p).abs() < 5 * math.sqrt(n * p * (1 - p))).all()


def test_fit_recovers_the_true_rewards_within_five_standard_errors():
    g = torch.Generator().manual_seed(3)
    w, lo = pf.sample_comparisons(TRUE, 5000, g)
    fit, history = pf.fit_bradley_terry(len(TRUE), w, lo)
    se = pf.bradley_terry_standard_errors(fit, w, lo)
    assert abs(float(fit.mean())) < 1e-12  # reported with mean zero
    assert ((fit - pf.centre(TRUE)).abs() < 5 * se).all()
    assert (se < 0.1).all() and history[-1] < history[0]
    # the fit is a maximum: no coordinate perturbation raises the likelihood
    best = pf.bradley_terry_log_likelihood(fit, w, lo)
    for i in range(len(TRUE)):
        for eps in (-1e-3, 1e-3):
            bumped = fit.clone()
            bumped[i] += eps
            assert pf.bradley_terry_log_likelihood(bumped, w, lo) < best


def test_standard_errors_match_the_spread_over_repeated_data_sets():
    """Over 200 simulated data sets, the fitted rewards' spread agrees with the Fisher standard errors."""
    g = torch.Generator().manual_seed(4)
    r = TRUE[:4]
    fits = []
    for _ in range(200):
        w, lo = pf.sample_comparisons(r, 400, g)
        fits.append(pf.fit_bradley_terry(len(r), w, lo)[0])
    fits = torch.stack(fits)
    w, lo = pf.sample_comparisons(r, 400, g)
    se = pf.bradley_terry_standard_errors(r, w, lo)
    ratio = fits.std(0) / se
    assert ((ratio - 1).abs() < 0.25).all()  # the std of a std over 200 draws is about 5 %
    assert ((fits.mean(0) - pf.centre(r)).abs() < 5 * se / math.sqrt(200) + 0.02).all()


def test_fit_errors_and_regularisation():
    with pytest.raises(ValueError, match="appear in no comparison"):
        pf.fit_bradley_terry(3, [0], [1])
    with pytest.raises(ValueError, match="n_items"):
        pf.fit_bradley_terry(1, [0], [0])
    # item 0 always wins: no finite MLE, but a small penalty keeps the fit finite and ordered
    fit, _ = pf.fit_bradley_terry(3, [0, 0, 1, 2], [1, 2, 2, 1], l2=0.01)
    assert torch.isfinite(fit).all() and fit[0] > fit[1] and fit[0] > fit[2]


def test_exact_policy_gradient_matches_autograd():
    z = torch.tensor([0.2, -1.0, 0.5, 1.3], dtype=torch.float64, requires_grad=True)
    u = torch.tensor([1.0, 0.0, 2.0, -0.5], dtype=torch.float64)
    (torch.softmax(z, 0) @ u).backward()
    assert torch.allclose(pf.policy_gradient(z.detach(), u), z.grad, atol=1e-12)


def test_mle_gradient_matches_autograd_and_policy_gradient_is_a_scaled_copy():
    z = torch.tensor([0.2, -1.0, 0.5], dtype=torch.float64, requires_grad=True)
    torch.log_softmax(z, 0)[1].backward()
    mle = pf.mle_gradient(z.detach(), 1)
    assert torch.allclose(mle, z.grad, atol=1e-12)
    pi = torch.softmax(z.detach(), 0)
    pg = pf.policy_gradient(z.detach(), [0.0, 1.0, 0.0])  # utility 1 for the demonstrated output
    assert torch.allclose(pg, pi[1] * mle, atol=1e-12)
    for bad in (3, -1, True, 1.0):
        with pytest.raises(ValueError, match=r"target must be an index in 0\.\.2"):
            pf.mle_gradient(z.detach(), bad)


@pytest.mark.parametrize("baseline", [False, True])
def test_reinforce_estimate_is_unbiased(baseline):
    z = torch.tensor([0.0, 1.0, -0.5, 0.3], dtype=torch.float64)
    u = torch.tensor([1.0, 0.0, 3.0, 0.5], dtype=torch.float64)
    g = torch.Generator().manual_seed(5)
    reps = 2000
    est = torch.stack([pf.reinforce_estimate(z, u, 8, g, baseline=baseline) for _ in range(reps)])
    sem = est.std(0) / math.sqrt(reps)
    assert ((est.mean(0) - pf.policy_gradient(z, u)).abs() < 5 * sem).all()


def test_baseline_lowers_the_variance():
    z = torch.tensor([0.0, 1.0, -0.5], dtype=torch.float64)
    u = torch.tensor([10.0, 11.0, 12.0], dtype=torch.float64)  # a large common offset
    g = torch.Generator().manual_seed(6)
    plain = torch.stack([pf.reinforce_estimate(z, u, 8, g, baseline=False) for _ in range(500)])
    based = torch.stack([pf.reinforce_estimate(z, u, 8, g, baseline=True) for _ in range(500)])
    assert float(based.var(0).sum()) < 0.1 * float(plain.var(0).sum())


def test_reinforce_estimate_is_the_estimate_from_its_own_samples():
    z = torch.tensor([0.3, -1.0, 0.8, 0.0], dtype=torch.float64)
    u = torch.tensor([1.0, 0.0, 2.0, 0.5], dtype=torch.float64)
    for baseline in (False, True):
        drawn = pf.reinforce_estimate(z, u, 6, torch.Generator().manual_seed(11), baseline=baseline)
        samples = pf.sample_policy(z, 6, torch.Generator().manual_seed(11))
        assert torch.equal(drawn, pf.reinforce_from_samples(z, u, samples, baseline=baseline))


def test_leave_one_out_baseline_by_hand_and_the_batch_mean_is_biased_towards_zero():
    r = torch.tensor([1.0, 0.0, 3.0, 0.5], dtype=torch.float64)
    assert torch.allclose(pf.leave_one_out_baseline(r), torch.tensor([3.5, 4.5, 1.5, 4.0], dtype=torch.float64) / 3)
    # the batch mean includes the sample itself: its weights are exactly (N − 1)/N of the leave-one-out ones
    assert torch.allclose(r - r.mean(), 0.75 * (r - pf.leave_one_out_baseline(r)), atol=1e-12)
    z = torch.tensor([0.0, 1.0, -0.5], dtype=torch.float64)
    u = torch.tensor([1.0, 0.0, 3.0], dtype=torch.float64)
    g = torch.Generator().manual_seed(12)
    batches = [pf.sample_policy(z, 4, g) for _ in range(3000)]
    score = lambda y: torch.nn.functional.one_hot(y, 3).double() - torch.softmax(z, 0)  # noqa: E731
    batch_mean = torch.stack([((u[y] - u[y].mean())[:, None] * score(y)).mean(0) for y in batches])
    exact = pf.policy_gradient(z, u)
    sem = batch_mean.std(0) / math.sqrt(len(batches))
    assert ((batch_mean.mean(0) - 0.75 * exact).abs() < 5 * sem).all()  # biased by the factor 3/4 …
    assert ((batch_mean.mean(0) - exact).abs() > 5 * sem).any()  # … which the test can see
    with pytest.raises(ValueError, match="at least two samples"):
        pf.leave_one_out_baseline([1.0])


def test_the_surrogates_gradient_is_the_estimate_but_its_value_is_not_the_expected_utility():
    z0 = torch.tensor([2.0, 1.0, 0.5, -1.5], dtype=torch.float64)
    u = torch.tensor([0.0, 0.2, 0.0, 1.0], dtype=torch.float64)
    samples = pf.sample_policy(z0, 64, torch.Generator().manual_seed(13))
    for baseline in (False, True):
        weights = u[samples] - (pf.leave_one_out_baseline(u[samples]) if baseline else 0.0)
        z = z0.clone().requires_grad_(True)
        value = pf.surrogate_objective(z, samples, weights)
        value.backward()
        assert torch.allclose(z.grad, pf.reinforce_from_samples(z0, u, samples, baseline), atol=1e-12)
        assert value.item() < 0 < float(torch.softmax(z0, 0) @ u)  # log π · U is negative; J is not
    # one row of logits per sample gives the same gradient, split by sample
    rows = z0.repeat(64, 1).requires_grad_(True)
    pf.surrogate_objective(rows, samples, u[samples]).backward()
    assert torch.allclose(rows.grad.sum(0), pf.reinforce_from_samples(z0, u, samples, False), atol=1e-12)
    # the weights are constants: a weight that carries a gradient does not pass it on
    w = u[samples].clone().requires_grad_(True)
    pf.surrogate_objective(z0.clone().requires_grad_(True), samples, w).backward()
    assert w.grad is None


@pytest.mark.parametrize(("args", "message"), [
    ((torch.zeros(3), [0, 3], [1.0, 1.0]), r"indices in 0\.\.2"),
    ((torch.zeros(3), [0.0, 1.0], [1.0, 1.0]), "answer indices"),
    ((torch.zeros(3), [0, 1], [1.0]), "one value per sample"),
    ((torch.zeros(3, 3), [0, 1], [1.0, 1.0]), "need 2 rows"),
    (([0.0, 0.0, 0.0], [0, 1], [1.0, 1.0]), "float tensor"),
    ((torch.tensor([0.0, float("nan")]), [0, 1], [1.0, 1.0]), "finite"),
])
def test_surrogate_rejects_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        pf.surrogate_objective(*args)


def test_actor_loss_by_hand_and_no_gradient_reaches_the_critic():
    logits = torch.tensor([[0.0, 1.0, -1.0], [0.5, 0.5, 0.0]], dtype=torch.float64, requires_grad=True)
    actions = torch.tensor([1, 2])
    returns = torch.tensor([2.0, -1.0], dtype=torch.float64)
    values = torch.tensor([0.5, 0.5], dtype=torch.float64, requires_grad=True)
    loss = pf.actor_loss(logits, actions, returns, values)
    log_pi = torch.log_softmax(logits.detach(), -1)
    by_hand = -(log_pi[0, 1] * 1.5 + log_pi[1, 2] * -1.5) / 2
    assert loss.item() == pytest.approx(by_hand.item(), abs=1e-12)
    loss.backward()
    assert values.grad is None  # the advantage is a constant for the actor
    pi = torch.softmax(logits.detach(), -1)
    onehot = torch.nn.functional.one_hot(actions, 3).double()
    assert torch.allclose(logits.grad, -(torch.tensor([1.5, -1.5], dtype=torch.float64)[:, None] / 2) * (onehot - pi))
    with pytest.raises(ValueError, match="same shape"):
        pf.actor_loss(logits, actions, returns, torch.zeros(3, dtype=torch.float64))


# ---------------------------------------------------------------- chapter 06 assignment, the actor loss item

def _actor_item():
    return assignments.load("06").item("actor_loss_and_gradients")


def test_the_actor_items_reference_gives_the_critic_no_gradient_and_matches_the_library():
    from course_utils.assessment.assignments.ch06_fine_tuning_as_mle import _actor_case

    item = _actor_item()
    for case in item.public + item.hidden:
        logits, actions, returns, values = case.build()
        loss, grad_logits, grad_values = item.reference(logits, actions, returns, values)
        assert not grad_values.any() and grad_logits.shape == logits.shape
        assert loss.item() == pytest.approx(pf.actor_loss(logits, actions, returns, values).item(), abs=1e-12)
    # a perfect critic leaves nothing to learn; a missing one (values 0) weighs by the returns
    logits, actions, returns, values = _actor_case(5, 4, 104, critic="exact")
    assert not item.reference(logits, actions, returns, values)[1].any()


def test_the_solution_notebooks_actor_loss_passes_and_its_pitfall_fails():
    import nbformat

    from course_utils.assessment.checks import evaluate

    path = Path(__file__).resolve().parent.parent / "solutions" / "06_fine_tuning_as_mle.ipynb"
    cell = next(c for c in nbformat.read(path, as_version=4).cells if "def actor_loss_and_gradients(" in c.source)
    namespace = {"torch": torch}
    exec(compile(cell.source, str(path), "exec"), namespace)
    assert evaluate("actor_loss_and_gradients", namespace["actor_loss_and_gradients"]).passed
    # the wrapper of the notebook with the advantage left attached: check() says no and names the values
    not_detached = cell.source.replace("(returns - values).detach()", "(returns - values)")
    assert not_detached != cell.source
    exec(compile(not_detached, str(path), "exec"), namespace)
    feedback = evaluate("actor_loss_and_gradients", namespace["actor_loss_and_gradients"])
    assert not feedback.passed and "element 2" in feedback.message


def test_toy_training_mle_is_faster_from_a_poor_start_and_pg_exact_gets_there():
    z = torch.tensor([3.0, 0.0, 0.0, -2.0], dtype=torch.float64)  # the best output starts unlikely
    u = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    g = torch.Generator().manual_seed(7)
    mle = pf.train_toy_policy(z, u, 100, 0.5, g, "mle")
    exact = pf.train_toy_policy(z, u, 100, 0.5, g, "pg-exact")
    sampled = pf.train_toy_policy(z, u, 100, 0.5, g, "pg", n_samples=16)
    assert mle.shape == (101, 4) and torch.allclose(mle.sum(1), torch.ones(101, dtype=torch.float64))
    assert mle[-1, 3] > 0.95 and mle[20, 3] > exact[20, 3]
    assert exact[-1, 3] > exact[0, 3] and sampled[-1, 3] >= sampled[0, 3]
    with pytest.raises(ValueError, match="method"):
        pf.train_toy_policy(z, u, 10, 0.5, g, "ppo")


# ---------------------------------------------------------------- chapter 06 assignment, preference items

def _fails_somewhere(name, fn) -> bool:
    ASSIGNMENT = assignments.load("06")
    from course_utils.assessment.verdict import failing_cases

    return bool(failing_cases(ASSIGNMENT.item(name), fn))


def _diff(r, w, lo):
    r = torch.as_tensor(r, dtype=torch.float64)
    return r[torch.as_tensor(w)] - r[torch.as_tensor(lo)]


def _adam_fit(n, w, lo, steps, centre=True):
    r = torch.zeros(n, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([r], lr=0.1)
    for _ in range(steps):
        loss = -torch.nn.functional.logsigmoid(r[torch.as_tensor(w)] - r[torch.as_tensor(lo)]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    r = r.detach()
    return r - r.mean() if centre else r + 1.0


PREFERENCE_WRONG = {
    "bradley_terry_log_likelihood": {
        "log of sigmoid": lambda r, w, lo: float(torch.log(torch.sigmoid(_diff(r, w, lo))).sum()),
        "loser minus winner": lambda r, w, lo: float(torch.nn.functional.logsigmoid(-_diff(r, w, lo)).sum()),
        "mean instead of sum": lambda r, w, lo: float(torch.nn.functional.logsigmoid(_diff(r, w, lo)).mean()),
        "probabilities summed": lambda r, w, lo: float(torch.sigmoid(_diff(r, w, lo)).sum()),
    },
    "fit_rewards": {
        "not centred": lambda n, w, lo: _adam_fit(n, w, lo, 500, centre=False),
        "stopped far too early": lambda n, w, lo: _adam_fit(n, w, lo, 20),
    },
    "policy_gradient": {
        "no baseline term": lambda z, u: torch.softmax(torch.tensor(z, dtype=torch.float64), 0) * torch.tensor(u),
        "utilities returned": lambda z, u: torch.tensor(u, dtype=torch.float64),
        "MLE gradient of the best output": lambda z, u: pf.mle_gradient(z, int(torch.tensor(u).argmax())),
    },
}


@pytest.mark.parametrize("name, label", [(n, w) for n, ws in PREFERENCE_WRONG.items() for w in ws])
def test_classic_mistakes_fail_a_graded_case(name, label):
    assert _fails_somewhere(name, PREFERENCE_WRONG[name][label])


@pytest.mark.parametrize("name", list(PREFERENCE_WRONG))
def test_references_and_a_gradient_ascent_answer_pass_every_graded_case(name):
    ASSIGNMENT = assignments.load("06")

    assert not _fails_somewhere(name, ASSIGNMENT.item(name).reference)
    if name == "fit_rewards":  # the approach the item asks for is accurate enough
        assert not _fails_somewhere(name, lambda n, w, lo: _adam_fit(n, w, lo, 500))


# ---------------------------------------------------------------- the policy-gradient explorer

def test_explorer_state_follows_the_sliders():
    from course_utils.viz.ch06 import PolicyGradientExplorer

    e = PolicyGradientExplorer(start_logit=-3.0, lr=1.0, draw=False)
    assert e.start_prob == pytest.approx(math.exp(-3) / (5 + math.exp(-3)))
    mle, exact = e.first_above["MLE on the demonstrated answer"], e.first_above["policy gradient (exact)"]
    assert mle is not None and (exact is None or exact > mle)
    assert "π(y*) at the start = 0.0099" in e.summary.value
    e.start_logit.value = 2.0  # the best answer is already likely: both methods finish quickly
    assert e.start_prob > 0.5
    quick = e.first_above["policy gradient (exact)"]
    assert quick is not None and (exact is None or quick < exact)
    slow_start = e.first_above["MLE on the demonstrated answer"]
    e.lr.value = 0.1  # smaller steps: MLE needs more of them
    assert e.first_above["MLE on the demonstrated answer"] > slow_start
    for h in e.histories.values():
        assert h.shape == (151, 6) and torch.allclose(h.sum(1), torch.ones(151, dtype=torch.float64))


def test_explorer_rejects_bad_settings():
    from course_utils.viz.ch06 import PolicyGradientExplorer

    for kwargs, message in [({"k": 1}, "k must"), ({"steps": 0}, "steps"), ({"threshold": 1.0}, "threshold")]:
        with pytest.raises(ValueError, match=message):
            PolicyGradientExplorer(draw=False, **kwargs)
