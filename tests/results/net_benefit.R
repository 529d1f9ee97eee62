# Reference values for analysis.costs.net_benefit_regression (computed once; CI has no R).
# Net-benefit regression (Hoch, Briggs & Willan 2002): for each willingness to pay lambda,
# lm(NB ~ kp + covariates) with NB = lambda * responder - cost; model-based and
# cluster-robust (sandwich::vcovCL, type HC1, clustered by facility) standard errors.
# Data: tests/results/net_benefit_data.csv (1,200 demo records, seed 11, complete cases;
# costs in USD at 2024 prices as converted by the project, rounded to cents).
# Run from the repository root: Rscript tests/results/net_benefit.R
library(sandwich)
d <- read.csv("tests/results/net_benefit_data.csv", stringsAsFactors = TRUE)
lambdas <- c(0, 20000, 50000, 150000)
fit_one <- function(y) {
  d$y <- y
  lm(y ~ kp + age + sex + etiology + levels_treated + country, data = d)
}
out <- list()
for (lam in lambdas) {
  fit <- fit_one(lam * d$responder - d$cost)
  out[[length(out) + 1]] <- list(
    wtp = lam,
    inb = unname(coef(fit)["kp"]),
    se_model = unname(sqrt(vcov(fit)["kp", "kp"])),
    se_cluster = unname(sqrt(vcovCL(fit, cluster = ~facility_id, type = "HC1")["kp", "kp"])),
    df_resid = fit$df.residual
  )
}
cost_fit <- fit_one(d$cost)
effect_fit <- fit_one(d$responder)
res <- list(
  n = nrow(d), n_clusters = length(unique(d$facility_id)),
  delta_cost = unname(coef(cost_fit)["kp"]),
  se_cost_model = unname(sqrt(vcov(cost_fit)["kp", "kp"])),
  delta_effect = unname(coef(effect_fit)["kp"]),
  se_effect_model = unname(sqrt(vcov(effect_fit)["kp", "kp"])),
  se_effect_cluster = unname(sqrt(vcovCL(effect_fit, cluster = ~facility_id,
                                         type = "HC1")["kp", "kp"])),
  net_benefit = out,
  r_version = R.version.string,
  sandwich_version = as.character(packageVersion("sandwich"))
)
writeLines(jsonlite::toJSON(res, auto_unbox = TRUE, digits = NA, pretty = TRUE),
           "tests/results/net_benefit.json")
