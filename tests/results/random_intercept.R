# Random-intercept logistic models, reference values for tests/unit/analysis/test_scorecard.py.
# Run ONCE from the repository root:
#   python tests/results/random_intercept_cohort.py  # writes random_intercept_cohort.csv
#   Rscript tests/results/random_intercept.R          # writes random_intercept.json
# R 4.x with lme4 and jsonlite. glmer's default Laplace approximation (nAGQ = 1), the same
# approximation as analysis.scorecard.random_intercept_logit, so the estimates agree up to the
# optimisers' convergence; nAGQ = 25 (adaptive Gauss-Hermite) is recorded too, to show the size
# of the approximation error that a Laplace fit may not be expected to match.
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
d <- read.csv("tests/results/random_intercept_cohort.csv", stringsAsFactors = TRUE)
ctl <- glmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5),
                    tolPwrss = 1e-12, check.conv.grad = .makeCC("warning", tol = 1e-6))
summarise <- function(fit) {
  re <- ranef(fit, condVar = TRUE)$facility
  list(intercept = unname(fixef(fit)[1]),
       sigma = unname(sqrt(VarCorr(fit)$facility[1])),
       loglik = as.numeric(logLik(fit)),
       facility = rownames(re),
       mode = unname(re[, 1]),
       mode_sd = unname(sqrt(attr(re, "postVar")[1, 1, ])))
}
with_offset <- glmer(y ~ 1 + (1 | facility), offset = offset, family = binomial, data = d,
                     control = ctl, nAGQ = 1)
no_offset <- glmer(y ~ 1 + (1 | facility), family = binomial, data = d, control = ctl,
                   nAGQ = 1)
agq <- glmer(y ~ 1 + (1 | facility), offset = offset, family = binomial, data = d,
             control = ctl, nAGQ = 25)
out <- list(n = nrow(d), events = sum(d$y), r_version = R.version.string,
            lme4_version = as.character(packageVersion("lme4")),
            laplace_offset = summarise(with_offset), laplace_no_offset = summarise(no_offset),
            agq25_offset = summarise(agq))
write_json(out, "tests/results/random_intercept.json", digits = NA, auto_unbox = TRUE,
           pretty = TRUE)
