"""Reference values for tests/train_metrics.rs, from scikit-learn and SciPy.

Run once with any Python that has numpy, scipy and scikit-learn (they are not needed by the tests):
    python tools/train_metrics_reference.py
and paste the printed constants into the test. The data below is the test's data, verbatim.
"""
import numpy as np
from scipy.stats import pearsonr
from sklearn.metrics import (accuracy_score, f1_score, mean_absolute_error, mean_squared_error, r2_score,
                             confusion_matrix)

TV = [0.81, 0.23, 0.45, 0.66, 0.12, 0.93, 0.38, 0.57, 0.71, 0.29, 0.64, 0.05]
TA = [0.72, 0.61, 0.28, 0.33, 0.41, 0.85, 0.67, 0.22, 0.58, 0.36, 0.44, 0.77]
PV = [0.70, 0.35, 0.52, 0.61, 0.20, 0.80, 0.45, 0.49, 0.66, 0.33, 0.58, 0.18]
PA = [0.65, 0.55, 0.35, 0.40, 0.47, 0.70, 0.52, 0.30, 0.61, 0.42, 0.49, 0.60]
# Metadata labels: the quadrant of the true values, except song 7 (V 0.57, A 0.22 -> Q4) labelled Q3.
LABELS = ["Q1", "Q2", "Q3", "Q4", "Q3", "Q1", "Q2", "Q3", "Q1", "Q3", "Q4", "Q2"]


def quadrant(v, a):
    return ("Q1" if a >= 0.5 else "Q4") if v >= 0.5 else ("Q2" if a >= 0.5 else "Q3")


def regression(t, p):
    t, p = np.array(t), np.array(p)
    return dict(mae=mean_absolute_error(t, p), rmse=np.sqrt(mean_squared_error(t, p)), r2=r2_score(t, p),
                pearson=pearsonr(t, p)[0])


pred_q = [quadrant(v, a) for v, a in zip(PV, PA)]
print("valence", {k: repr(float(v)) for k, v in regression(TV, PV).items()})
print("arousal", {k: repr(float(v)) for k, v in regression(TA, PA).items()})
print("pred quadrants", pred_q)
print("accuracy", repr(float(accuracy_score(LABELS, pred_q))))
print("macro_f1", repr(float(f1_score(LABELS, pred_q, average="macro"))))
print("confusion (rows true Q1..Q4)", confusion_matrix(LABELS, pred_q, labels=["Q1", "Q2", "Q3", "Q4"]).tolist())

# Macro-F1 edge cases: a class only in the true labels (F1 0, counted), a class in neither (left out).
true_only = (["Q1", "Q1", "Q2", "Q3"], ["Q1", "Q2", "Q2", "Q2"])
print("true-only class macro_f1", repr(float(f1_score(*true_only, average="macro"))))
pred_only = (["Q1", "Q1", "Q1", "Q2"], ["Q1", "Q4", "Q1", "Q2"])
print("pred-only class macro_f1", repr(float(f1_score(*pred_only, average="macro"))))
# Constant targets: sklearn's force_finite rule.
print("r2 constant truth, exact", r2_score([0.3, 0.3], [0.3, 0.3]), "inexact", r2_score([0.3, 0.3], [0.2, 0.4]))
