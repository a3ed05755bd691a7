"""The verdict against the baselines (kiln/evaluate/verdict.py): task-blind, from metrics.json alone."""

from kiln.evaluate.verdict import verdict, verdict_html

HEADLINE = (("accuracy", "max"), ("rmse", "min"))


def test_regression_loss_says_by_how_much_on_which_metric():
    m = {"val": {"rmse": 3.0, "r2": 0.8}, "test": {"rmse": 3.1},
         "baselines": {"val": {"dummy": {"rmse": 7.0}, "linear": {"rmse": 3.2}, "hist_gradient_boosting": {"rmse": 2.5}}}}
    v = verdict(m, HEADLINE)
    assert v["loses"] and v["baseline"] == "hist_gradient_boosting" and v["metric"] == "rmse" and v["split"] == "val"
    assert abs(v["gap"] - 0.5) < 1e-9 and abs(v["gap_percent"] - 20.0) < 1e-9
    assert "LOSES" in v["line"] and "hist_gradient_boosting" in v["line"] and "20.0 %" in v["line"] and "rmse" in v["line"]
    assert "Verdict" in verdict_html({**v, "advice": "Try trees"}) and "Try trees" in verdict_html({**v, "advice": "Try trees"})


def test_classification_beating_every_baseline_is_no_loss():
    m = {"val": {"accuracy": 0.95, "log_loss": 0.2},
         "baselines": {"val": {"dummy": {"accuracy": 0.6}, "linear": {"accuracy": 0.95}, "hist_gradient_boosting": {"accuracy": 0.9}}}}
    v = verdict(m, HEADLINE)
    assert not v["loses"] and v["metric"] == "accuracy" and v["baseline"] == "linear"  # a tie is not a loss
    assert "beats or ties" in v["line"]


def test_direction_from_the_monitor_when_no_headline_metric_and_none_without_baselines():
    m = {"val": {"mase": 1.2}, "baselines": {"val": {"naive": {"mase": 1.0}, "drift": {"mase": 1.5}}}}
    v = verdict(m, (), monitor="val_mase", mode="min")
    assert v["loses"] and v["baseline"] == "naive" and v["metric"] == "mase"
    assert verdict({"val": {"mase": 1.0}}, (), "val_mase") is None
    assert verdict({"val": {"loss": 1.0}, "baselines": {"val": {"naive": {"mase": 1.0}}}}, HEADLINE, "val_loss") is None


def test_falls_back_to_test_when_val_has_no_baselines():
    m = {"test": {"accuracy": 0.7}, "baselines": {"test": {"linear": {"accuracy": 0.8}}}}
    v = verdict(m, HEADLINE)
    assert v["split"] == "test" and v["loses"] and abs(v["gap"] - 0.1) < 1e-9
