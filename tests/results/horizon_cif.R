# Reference values for analysis/horizon.py (issue 12, item 1), computed ONCE with R and
# committed beside this script; the Python tests read only the CSV/JSON written here.
#
#   cd tests/results && Rscript horizon_cif.R
#
# Writes horizon_cohort.csv (a small fixed-seed cohort: time in whole days with ties, event
# code 0 censored / 1 new fracture / 2 death, procedure VP/KP, a covariate age) and
# horizon_cif.json with, per procedure and horizon:
#   * the Aalen-Johansen cumulative incidence of code 1 with death competing and the number
#     at risk, from survival::survfit with a factor status (multi-state), summary(times = );
#   * its delta-method (Marubini-Valsecchi / Collett 2015 s12.2) SE, coded below by hand as
#     a loop over the event times (an independent implementation of the formula), and the
#     log(-log) interval computed from it; survfit's own (infinitesimal jackknife) SE is
#     stored too for comparison, it is a different, asymptotically equivalent estimator;
#   * 1 - Kaplan-Meier of the time to death (code 2 as the event, the rest censored) from
#     survfit(conf.type = "log-log") with its Greenwood SE and n.risk; the log(-log)
#     interval of F = 1 - S computed here from that SE;
#   * the KP - VP difference (SE sqrt(v1 + v2)) and ratio (log-scale delta method);
#   * IPTW (ATE, stabilised; logistic propensity on age) weighted AJ point estimates from
#     survfit(weights = ).
library(survival)
library(jsonlite)

set.seed(20261207)
n <- 160
procedure <- rep(c("vertebroplasty", "kyphoplasty"), each = n / 2)
age <- round(rnorm(n, 75, 8))
kp <- as.numeric(procedure == "kyphoplasty")
t_fx <- ceiling(rexp(n, rate = ifelse(kp == 1, 1 / 1400, 1 / 1100) * exp(0.02 * (age - 75))))
t_death <- ceiling(rexp(n, rate = 1 / 1500 * exp(0.05 * (age - 75))))
t_cens <- sample(c(20, 30, 90, 180, 365, 400, 500, 730, 900), n, replace = TRUE)
time <- pmin(t_fx, t_death, t_cens)
code <- ifelse(time == t_fx, 1, ifelse(time == t_death, 2, 0))
# Ties at the horizons themselves, and a tie of an event with a censoring.
time[1:3] <- 365; code[1:3] <- c(1, 0, 2)
time[81:83] <- 30; code[81:83] <- c(2, 0, 1)
cohort <- data.frame(procedure = procedure, age = age, time = time, code = code)
write.csv(cohort, "horizon_cohort.csv", row.names = FALSE)

# Delta-method variance of the AJ cumulative incidence at tau (Collett 2015, eq. 12.4).
delta_var <- function(time, code, tau) {
  ut <- sort(unique(time[code > 0 & time <= tau]))
  s_prev <- 1; f <- 0
  fj <- numeric(length(ut)); sj <- numeric(length(ut)); nj <- numeric(length(ut))
  d1 <- numeric(length(ut)); dall <- numeric(length(ut))
  for (j in seq_along(ut)) {
    nj[j] <- sum(time >= ut[j])
    d1[j] <- sum(time == ut[j] & code == 1)
    dall[j] <- sum(time == ut[j] & code > 0)
    sj[j] <- s_prev
    f <- f + s_prev * d1[j] / nj[j]
    fj[j] <- f
    s_prev <- s_prev * (1 - dall[j] / nj[j])
  }
  ft <- f
  v <- 0
  for (j in seq_along(ut)) {
    a <- if (nj[j] > dall[j]) dall[j] / (nj[j] * (nj[j] - dall[j])) else 0
    v <- v + (ft - fj[j])^2 * a + sj[j]^2 * d1[j] * (nj[j] - d1[j]) / nj[j]^3 -
      2 * (ft - fj[j]) * sj[j] * d1[j] / nj[j]^2
  }
  c(estimate = ft, variance = v)
}

loglog <- function(f, se, z = qnorm(0.975)) {
  theta <- log(-log(f)); s <- se / (f * abs(log(f)))
  sort(c(exp(-exp(theta + z * s)), exp(-exp(theta - z * s))))
}

# IPTW weights (ATE, stabilised) from a logistic model of KP on age.
ps <- fitted(glm(kp ~ age, family = binomial))
w <- ifelse(kp == 1, mean(kp) / ps, (1 - mean(kp)) / (1 - ps))

horizons <- c(30, 180, 365)
out <- list(r_version = R.version.string,
            survival_version = as.character(packageVersion("survival")), rows = list(),
            comparisons = list(), iptw = list())
est <- list()
for (p in c("vertebroplasty", "kyphoplasty")) {
  d <- cohort[cohort$procedure == p, ]
  fit <- survfit(Surv(time, factor(code, 0:2, c("censor", "fracture", "death"))) ~ 1, data = d)
  km <- survfit(Surv(time, code == 2) ~ 1, data = d, conf.type = "log-log")
  s <- summary(fit, times = horizons)
  k <- summary(km, times = horizons)
  for (i in seq_along(horizons)) {
    dv <- delta_var(d$time, d$code, horizons[i])
    se <- sqrt(dv[["variance"]])
    f <- s$pstate[i, which(fit$states == "fracture")]
    stopifnot(abs(f - dv[["estimate"]]) < 1e-12)
    ci <- loglog(f, se)
    fk <- 1 - k$surv[i]
    cik <- loglog(fk, k$std.err[i])
    est[[paste(p, horizons[i])]] <- c(f, se)
    out$rows[[length(out$rows) + 1]] <- list(
      procedure = p, horizon = horizons[i], n = nrow(d),
      aj_fracture = f, aj_fracture_se_delta = se, aj_fracture_low = ci[1],
      aj_fracture_high = ci[2], aj_fracture_se_survfit_ij = s$std.err[i, which(fit$states == "fracture")],
      aj_n_risk = s$n.risk[i, 1],
      km_death = fk, km_death_se_greenwood = k$std.err[i], km_death_low = cik[1],
      km_death_high = cik[2], km_n_risk = k$n.risk[i])
  }
  d$w <- w[cohort$procedure == p]
  wfit <- survfit(Surv(time, factor(code, 0:2, c("censor", "fracture", "death"))) ~ 1,
                  data = d, weights = w)
  ws <- summary(wfit, times = 365)
  out$iptw[[p]] <- ws$pstate[1, which(wfit$states == "fracture")]
}
z <- qnorm(0.975)
for (h in horizons) {
  a <- est[[paste("kyphoplasty", h)]]; b <- est[[paste("vertebroplasty", h)]]
  se <- sqrt(a[2]^2 + b[2]^2); diff <- a[1] - b[1]
  se_log <- sqrt((a[2] / a[1])^2 + (b[2] / b[1])^2)
  out$comparisons[[length(out$comparisons) + 1]] <- list(
    horizon = h, difference = diff, se = se, low = diff - z * se, high = diff + z * se,
    p_value = 2 * pnorm(-abs(diff / se)), ratio = a[1] / b[1],
    ratio_low = a[1] / b[1] * exp(-z * se_log), ratio_high = a[1] / b[1] * exp(z * se_log))
}
write_json(out, "horizon_cif.json", auto_unbox = TRUE, digits = NA, pretty = TRUE)
