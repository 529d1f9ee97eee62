# Reference values for analysis.costs.ranked_cost_per_responder (computed once; CI has no R).
# Cost per responder of each unit = mean(cost) / mean(responder); its 95% CI is Fieller's set
# {theta : (mean_c - theta * mean_r)^2 <= z^2 * var(mean_c - theta * mean_r)} with the sample
# variances and covariance of (cost, responder) divided by n (Fieller 1954; Polsky et al.
# 1997). Computed here by test inversion (uniroot on the pivot), not by the closed-form roots
# the Python code uses: an independent computation of the same definition.
# Data: tests/results/cost_per_responder_fieller_data.csv (generated with numpy, seed
# 20261207: six units, one without responders, one with a rate near 0).
# Run from the repository root: Rscript tests/results/cost_per_responder_fieller.R
d <- read.csv("tests/results/cost_per_responder_fieller_data.csv")
z <- qnorm(0.975)
out <- list()
for (u in sort(unique(d$unit))) {
  x <- d[d$unit == u, ]
  n <- nrow(x)
  mc <- mean(x$cost); mr <- mean(x$responder)
  v <- cov(cbind(x$cost, x$responder)) / n
  pivot <- function(theta) (mc - theta * mr)^2 - z^2 * (v[1, 1] - 2 * theta * v[1, 2] + theta^2 * v[2, 2])
  ratio <- if (sum(x$responder) > 0) mc / mr else NA
  low <- NA; high <- NA
  # A finite interval exists only when the denominator is significant: mr^2 > z^2 var(mr).
  if (!is.na(ratio) && mr^2 > z^2 * v[2, 2]) {
    low <- uniroot(pivot, c(-1e9, ratio), tol = 1e-10)$root
    high <- uniroot(pivot, c(ratio, 1e12), tol = 1e-10)$root
  }
  out[[length(out) + 1]] <- list(unit = u, n = n, responders = sum(x$responder),
                                 cost_per_responder = ratio, low = low, high = high)
}
writeLines(jsonlite::toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", pretty = TRUE),
           "tests/results/cost_per_responder_fieller.json")
