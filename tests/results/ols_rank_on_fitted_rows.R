# Reference values for analysis._kernels._fit_ols and the OLS/ANCOVA rows of
# analysis.comparison.compare_procedures (issue 12, item 7.1): residual df = n - rank on the
# rows actually fitted, and HC3 with a leverage-1 record.
#
# Data: ols_rank_on_fitted_rows_data.csv, the 71 records of operator OP-3440 in the synthetic
# demo data (data.demo_records(5000, seed=2024)); no real patients. Its one "traumatic"
# record has no month-1 pain score, so the etiology[traumatic] column is all zero on the
# ANCOVA's rows (R reports it as aliased), and it is the only traumatic record with a
# procedure duration, so it has leverage 1 in the duration model.
#
# Model coding as in analysis.adjustment.covariate_design: categorical covariates as factors;
# a numeric covariate with missing values gets its median over all modelled records plus a
# missing indicator; country is left out (one value in this selection). Centring/scaling of
# the numeric covariates (done by the Python design) does not change the KP coefficient.
#
# Run once from this folder:  Rscript ols_rank_on_fitted_rows.R
# (R 4.x, sandwich 3.0-2); writes ols_rank_on_fitted_rows.json. CI does not run R.
library(sandwich)

d <- read.csv("ols_rank_on_fitted_rows_data.csv", stringsAsFactors = FALSE)
d <- d[d$procedure %in% c("vertebroplasty", "kyphoplasty"), ]
d$kp <- as.numeric(d$procedure == "kyphoplasty")
for (v in c("fracture_age_weeks", "prior_fractures")) {
  miss <- is.na(d[[v]])
  d[[paste0(v, "_missing")]] <- as.numeric(miss)
  d[[v]][miss] <- median(d[[v]], na.rm = TRUE)
}
d$sex <- factor(d$sex)
d$etiology <- factor(d$etiology)
rhs <- paste("age + sex + etiology + levels_treated + fracture_age_weeks +",
             "fracture_age_weeks_missing + prior_fractures + prior_fractures_missing + kp")

summarise <- function(fit, vc) {
  est <- unname(coef(fit)["kp"])
  se <- unname(sqrt(vc["kp", "kp"]))
  df <- fit$df.residual
  q <- qt(0.975, df)
  list(n = nrow(model.frame(fit)), rank = fit$rank, df_residual = df,
       aliased = names(coef(fit))[is.na(coef(fit))],
       kp = est, se_kp = se, ci95_low = est - q * se, ci95_high = est + q * se)
}

# 1. ANCOVA of month-1 pain (classical SE), on the records with both pain scores.
ancova_rows <- d[!is.na(d$pain_month1) & !is.na(d$pain_baseline), ]
ancova <- lm(as.formula(paste("pain_month1 ~", rhs, "+ pain_baseline")), data = ancova_rows)
out <- list(ancova_pain_month1 = summarise(ancova, vcov(ancova)))
out$ancova_pain_month1$ci95_confint <- unname(confint(ancova, "kp", level = 0.95)[1, ])

# 2. Procedure duration, HC3. The traumatic record has leverage 1: vcovHC warns (its HC3
#    term is 0/0). The reference is the HC3 fit without that record, where the KP effect and
#    every other record's leverage are the same (see _fit_ols).
dur_rows <- d[!is.na(d$duration_min), ]
dur <- lm(as.formula(paste("duration_min ~", rhs)), data = dur_rows)
lev <- hatvalues(dur)
saturated <- lev > 1 - sqrt(.Machine$double.eps)
dur_without <- lm(as.formula(paste("duration_min ~", rhs)), data = dur_rows[!saturated, ])
res <- summarise(dur_without, vcovHC(dur_without, type = "HC3"))
res$n_leverage_one <- sum(saturated)
res$kp_with_all_records <- unname(coef(dur)["kp"])
res$df_residual_with_all_records <- dur$df.residual
out$ols_duration_hc3 <- res

out$r_version <- R.version.string
out$sandwich_version <- as.character(packageVersion("sandwich"))
writeLines(jsonlite::toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE),
           "ols_rank_on_fitted_rows.json")
