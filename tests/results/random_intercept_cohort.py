"""Write tests/results/random_intercept_cohort.csv: the fixed-seed cohort of
tests/results/random_intercept.R (run once; the CSV and the R results are committed).

    python tests/results/random_intercept_cohort.py && Rscript tests/results/random_intercept.R

30 facilities of 3 to 300 records (several small ones, where shrinkage matters), a known
case-mix offset per record (a logit), facility effects ~ N(0, 0.6²), outcome 0/1.
"""

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    rng = np.random.default_rng(2026)
    sizes = np.array([3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 70,
                      80, 90, 100, 120, 140, 160, 180, 200, 220, 240, 260, 280, 300, 9, 7])
    facility = np.repeat([f"F{i:02d}" for i in range(sizes.size)], sizes)
    effect = rng.normal(0.0, 0.6, sizes.size)
    x = rng.normal(0.0, 1.0, facility.size)
    offset = -1.3 + 0.7 * x
    u = np.repeat(effect, sizes)
    y = (rng.random(facility.size) < expit(offset + 0.2 + u)).astype(int)
    out = pd.DataFrame({"facility": facility, "offset": offset, "y": y})
    out.to_csv(HERE / "random_intercept_cohort.csv", index=False, float_format="%.12g")
    print(len(out), "records,", out["y"].sum(), "events")
