# Reference values for the facility-clustered "by day N" rows of analysis/comparison.py
# (grouped jackknife of the cumulative incidences at the horizon, analysis/horizon.py),
# computed ONCE with R and committed beside this script; the Python tests read only the
# JSON written here.
#
#   cd tests/results && Rscript horizon_cluster_jackknife.R
#
# Cohort: clustered_cohort.csv (fixed seed, 40 facilities; see clustered_cohort.py).
# Event times coded here independently from the rules of analysis.horizon:
#   new fracture by 365 days: a fracture at adjacent_fracture_days (status 1); else a death
#   on or before the last contact (death_days <= followup_days) competes at death_days
#   (status 2); else censored at followup_days.
#   death by 30 days: death at death_days (status 1), else censored at followup_days.
# The cumulative incidence at the horizon is survival::survfit with a factor status
# (Aalen-Johansen; 1 - KM for a single event type), read with summary(times = horizon).
# Grouped jackknife: each facility is dropped in turn and survfit is RE-RUN on the remaining
# records (no shortcut); theta = KP - VP difference and log(KP / VP);
# Var = (G - 1) / G * sum((theta_-g - mean(theta_-g))^2); CI with qt(0.975, G - 1); p from
# the t(G - 1) distribution (Efron & Tibshirani 1993; Cameron & Miller 2015).
library(survival)
library(jsonlite)

d <- read.csv("clustered_cohort.csv", stringsAsFactors = FALSE)

fracture_time <- ifelse(d$adjacent_fracture == 1, d$adjacent_fracture_days, d$followup_days)
competing <- d$adjacent_fracture == 0 & d$died == 1 & !is.na(d$death_days) &
  d$death_days <= d$followup_days
fracture_time[competing] <- d$death_days[competing]
fracture_status <- ifelse(d$adjacent_fracture == 1, 1, ifelse(competing, 2, 0))

death_time <- ifelse(d$died == 1, d$death_days, d$followup_days)
death_status <- as.numeric(d$died == 1)

cif_at <- function(time, status, horizon) {
  if (length(time) == 0) return(NA_real_)
  if (max(status) == 0) return(0)
  if (max(status) == 1 && !any(status == 2)) {
    fit <- survfit(Surv(time, status) ~ 1)
    return(1 - summary(fit, times = horizon, extend = TRUE)$surv)
  }
  fit <- survfit(Surv(time, factor(status, levels = c(0, 1, 2))) ~ 1)
  s <- summary(fit, times = horizon, extend = TRUE)
  unname(s$pstate[, which(fit$states == "1")])
}

pair <- function(keep, time, status, horizon) {
  kp <- d$kp == 1
  c(kp = cif_at(time[keep & kp], status[keep & kp], horizon),
    vp = cif_at(time[keep & !kp], status[keep & !kp], horizon))
}

jackknife <- function(time, status, horizon) {
  full <- pair(rep(TRUE, nrow(d)), time, status, horizon)
  facilities <- sort(unique(d$facility_id))
  g <- length(facilities)
  loo <- t(sapply(facilities, function(f) pair(d$facility_id != f, time, status, horizon)))
  theta <- loo[, "kp"] - loo[, "vp"]
  log_ratio <- log(loo[, "kp"] / loo[, "vp"])
  jk_se <- function(x) sqrt((g - 1) / g * sum((x - mean(x))^2))
  diff <- unname(full["kp"] - full["vp"])
  se <- jk_se(theta)
  q <- qt(0.975, g - 1)
  ratio <- unname(full["kp"] / full["vp"])
  se_log <- jk_se(log_ratio)
  list(horizon = horizon, n_clusters = g, estimate_kp = unname(full["kp"]),
       estimate_vp = unname(full["vp"]), difference = diff, se = se,
       low = diff - q * se, high = diff + q * se,
       p_value = 2 * pt(abs(diff) / se, g - 1, lower.tail = FALSE),
       ratio = ratio, se_log_ratio = se_log,
       ratio_low = ratio * exp(-q * se_log), ratio_high = ratio * exp(q * se_log),
       leave_one_out_kp = unname(loo[, "kp"]), leave_one_out_vp = unname(loo[, "vp"]),
       facilities = facilities)
}

out <- list(r_version = R.version.string,
            survival_version = as.character(packageVersion("survival")),
            adjacent_fracture_12m = jackknife(fracture_time, fracture_status, 365),
            death_30d = jackknife(death_time, death_status, 30))
write_json(out, "horizon_cluster_jackknife.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
