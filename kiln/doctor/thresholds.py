"""Every threshold the doctor judges by, with the reason for its number and where the number comes from.

The rules (kiln/doctor/rules.py) read the recorded signals against these; the probes (kiln/doctor/probes.py,
`kiln doctor RUN probe=true`) read their experiments against the last five.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Threshold:
    value: float
    reason: str
    source: str


T = {
    "nonfinite": Threshold(0, "any NaN or Inf in the loss or a gradient means the run has diverged",
                           "SageMaker Debugger built-in rules loss_not_finite / exploding_tensor (any NaN/Inf)"),
    "loss_jump": Threshold(0.10, "an epoch whose training loss is 10 % above the previous one's: the step overshoots",
                           "the course notes: big jumps in the loss curve mean too large a step"),
    "loss_jump_floor": Threshold(0.25, "only jumps to a loss still above a quarter of epoch 1's count: a loss near zero "
                                 "wobbles by more than 10 % without overshooting", "Kiln's choice"),
    "loss_jumps": Threshold(2, "two such jumps in one phase are a pattern, not noise", "Kiln's choice"),
    "update_high": Threshold(3e-2, "updates above 3 % of the weights a step, 30x the ~1e-3 a healthy run takes",
                             "Karpathy, CS231n 'Neural Networks Part 3': update/weight ratio ~1e-3"),
    "update_low": Threshold(1e-5, "updates under 1e-5 of the weights a step, 100x below the ~1e-3 guideline",
                            "Karpathy, CS231n 'Neural Networks Part 3': update/weight ratio ~1e-3"),
    "init_excess": Threshold(1.0, "a loss at initialisation 1 nat above -log(1/classes) means logits confidently wrong "
                             "before learning (logit spread of ~1.4 or more)",
                             "Karpathy, 'A Recipe for Training Neural Networks' (2019): verify loss @ init"),
    "init_ratio": Threshold(4.0, "a loss at initialisation 4x the loss of predicting the mean target: initial outputs "
                            "spread ~1.7x wider than the target", "Karpathy, 'A Recipe for Training Neural Networks': init well"),
    "plateau": Threshold(1e-3, "training loss falling under 0.1 % an epoch over 5 epochs while still within 10 % of "
                         "where it started: it is stuck, not converged",
                         "SageMaker Debugger loss_not_decreasing (0.1 % over 10 steps), at epoch scale"),
    "overfit_gap": Threshold(0.10, "(val - train) / train loss above 0.1 while val loss rose 10 % above its best and "
                             "train loss kept falling", "SageMaker Debugger overfit rule: (val - train) / train > 0.1"),
    "underfit_gain": Threshold(0.01, "the monitored val metric still improving in the last 10 % of epochs and train loss "
                               "still falling over 1 % an epoch when the epochs ran out",
                               "Deep Learning Tuning Playbook: a run whose best epoch is its last wanted more steps"),
    "chance_se": Threshold(2.0, "val accuracy within 2 standard errors of the majority class share (binomial SE at "
                           "the val size)", "Karpathy, 'A Recipe': beat an input-independent baseline"),
    "baseline_se": Threshold(2.0, "the model's accuracy more than 2 standard errors below a baseline's on the same split "
                             "(unpaired binomial SE)", "DESIGN.md: every run compares with its field's honest baselines"),
    "baseline_rel": Threshold(0.05, "an error metric 5 % worse (or R² 0.05 lower) than a baseline's on the same split",
                              "Kiln's choice for metrics without a standard error"),
    "explode_growth": Threshold(100.0, "global gradient norm 100x its median over the run",
                                "SageMaker Debugger exploding_tensor; Tuning Playbook: clip at the 90th percentile"),
    "vanish_ratio": Threshold(1e-3, "a layer's gradient RMS 1,000x below the largest layer's: its weights barely learn",
                              "Glorot & Bengio 2010 (saturating sigmoids); Kiln's ratio"),
    "vanish_abs": Threshold(1e-7, "a layer's gradient RMS under 1e-7", "SageMaker Debugger vanishing_gradient (1e-7)"),
    "dead_layer": Threshold(0.5, "over half of a ReLU layer's units active on under 1 % of the held batch",
                            "SageMaker Debugger dead_relu (threshold_inactivity 1 %, threshold_layer 50 %)"),
    "input_wait": Threshold(0.5, "over half of each step spent waiting for the next batch (the median epoch after the "
                            "first; timed on sampled steps, see kiln/doctor/input_wait.py). The TF Profiler calls 20 % "
                            "highly input-bound; on a CPU the pipeline and the step share cores, and a few sampled steps "
                            "an epoch are noisy, so Kiln waits for 50 %",
                            "TensorFlow Profiler input-pipeline analyser (20 %); Kiln's measurement"),
    "imbalance": Threshold(10.0, "the largest class 10x the smallest in val", "imbalanced-learn / common practice"),
    "noisy_labels": Threshold(0.05, "over 5 % of training labels flagged by confident learning",
                              "Northcutt et al. 2021 (3-6 % label errors in common benchmarks)"),
    "ece": Threshold(0.10, "expected calibration error over 0.1 on at least 500 examples",
                     "Guo et al. 2017: uncalibrated deep nets 4-16 % ECE, temperature scaling ~1-2 %"),
    "gan_d_loss": Threshold(0.05, "discriminator loss under 0.05 (equilibrium is ln 2 ~ 0.69 per term) with the "
                            "generator loss doubling: the discriminator wins", "Goodfellow et al. 2014; keras-io DCGAN logs"),
    # kiln doctor RUN probe=true (kiln/doctor/probes.py)
    "overfit_batch": Threshold(0.25, "a fresh model's loss on one fixed batch (8 examples) must fall to a quarter "
                               "of its start within 200 steps at the run's learning rate (not a tenth: Kiln's default "
                               "table model, dropout on, gets 0.6 -> 0.09 in 200 steps at lr 1e-3; a bug leaves it "
                               "near its start)",
                               "Karpathy, 'A Recipe for Training Neural Networks' (2019): overfit one batch"),
    "zero_margin": Threshold(0.01, "the run's best val loss must be at least 1 % below that of the same model trained on "
                             "zeroed inputs (200 steps, enough to learn the label prior)",
                             "Karpathy, 'A Recipe': an input-independent baseline should do worse than real inputs"),
    "sweep_high": Threshold(1.0, "the run's learning rate at or above the rate where the sweep's smoothed loss is lowest "
                            "(past it the loss rises: the step overshoots)",
                            "Smith 2017, 'Cyclical Learning Rates' (LR range test); fastai lr_find"),
    "sweep_low": Threshold(30.0, "the run's learning rate over 30x (1.5 decades) below the sweep's suggestion (fastai's "
                           "'valley')", "fastai lr_find valley; Kiln's factor"),
    "pipeline_ratio": Threshold(1.0, "the training pipeline alone slower per batch than a training step on a batch in "
                                "memory: prefetching cannot hide it, so the pipeline sets the pace",
                                "TensorFlow 'Better performance with the tf.data API' (overlap input and compute)"),
}


__all__ = ["T", "Threshold"]
