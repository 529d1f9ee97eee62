"""Write tests/results/clustered_cohort.csv: the small fixed-seed clustered cohort of
tests/results/clustered_se.R (run once; the CSV and the R results are committed).

    python tests/results/clustered_cohort.py && Rscript tests/results/clustered_se.R

1,500 synthetic demo records (seed 12, 40 facilities; the 6 records with sex "X" left
out so that every sex level has events), the columns the clustered comparisons use.
"""

from pathlib import Path

import numpy as np

from data import demo_records

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    d = demo_records(1500, seed=12)
    d = d[d["sex"].astype(str) != "X"]
    out = d[["facility_id", "procedure", "age", "sex", "etiology", "cement_leakage",
             "duration_min", "pain_baseline", "pain_month1", "adjacent_fracture",
             "adjacent_fracture_days", "followup_days", "died", "death_days", "cost"]].copy()
    for column in ("cement_leakage", "adjacent_fracture", "died"):
        out[column] = out[column].astype(float).astype("Int64")
    out["kp"] = (out["procedure"].astype(str) == "kyphoplasty").astype(int)
    out.to_csv(HERE / "clustered_cohort.csv", index=False, float_format="%.10g")
    print(len(out), "records,", out["facility_id"].nunique(), "facilities", np.mean(out["kp"]))
