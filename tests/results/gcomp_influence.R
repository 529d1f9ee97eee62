# Reference values for the g-computation (standardised risks) interval of
# analysis.adjustment.standardised_risks (issue 12, item 7.4): the influence-function
# (sandwich) variance of the stacked estimating equations, written out with R's glm() and
# the sandwich package (estfun, bread), the estimator of stdReg::stdGlm (Sjolander 2016).
# A nonparametric bootstrap (4,000 replicates) is added as a plausibility check.
#
# Data: gcomp_influence_data.csv, 2,000 records of the synthetic demo data
# (data.demo_records(2000, seed=7)); no real patients. Model: logit(y) = kp + age + sex +
# etiology + levels_treated, standardised to all 2,000 records.
#
# Run once from this folder:  Rscript gcomp_influence.R   (R 4.x, sandwich 3.0-2)
# writes gcomp_influence.json. CI does not run R.
library(sandwich)

d <- read.csv("gcomp_influence_data.csv", stringsAsFactors = FALSE)
d$kp <- as.numeric(d$procedure == "kyphoplasty")
d$sex <- factor(d$sex)
d$etiology <- factor(d$etiology)

standardise <- function(data, outcome) {
  data$y <- as.numeric(as.logical(data[[outcome]]))
  fit <- glm(y ~ kp + age + sex + etiology + levels_treated, family = binomial, data = data,
             control = glm.control(epsilon = 1e-14, maxit = 100))
  X <- model.matrix(fit)
  X1 <- X; X1[, "kp"] <- 1
  X0 <- X; X0[, "kp"] <- 0
  b <- coef(fit)
  p1 <- as.vector(plogis(X1 %*% b)); p0 <- as.vector(plogis(X0 %*% b))
  list(fit = fit, X1 = X1, X0 = X0, p1 = p1, p0 = p0, r1 = mean(p1), r0 = mean(p0))
}

out <- list()
for (outcome in c("pulmonary_embolism", "cement_leakage")) {
  s <- standardise(d, outcome)
  n <- nrow(d)
  # Influence function of beta: bread (n (X'WX)^-1) times the score contributions.
  if_beta <- estfun(s$fit) %*% bread(s$fit)
  g1 <- colMeans(s$p1 * (1 - s$p1) * s$X1)
  g0 <- colMeans(s$p0 * (1 - s$p0) * s$X0)
  if1 <- (s$p1 - s$r1) + as.vector(if_beta %*% g1)
  if0 <- (s$p0 - s$r0) + as.vector(if_beta %*% g0)
  rd <- s$r1 - s$r0
  se_rd <- sqrt(sum((if1 - if0)^2)) / n
  se_log_rr <- sqrt(sum((if1 / s$r1 - if0 / s$r0)^2)) / n
  z <- qnorm(0.975)
  set.seed(20261207)
  boot <- replicate(4000, {
    b <- standardise(d[sample.int(n, n, replace = TRUE), ], outcome)
    b$r1 - b$r0
  })
  out[[outcome]] <- list(
    risk_kp = s$r1, risk_vp = s$r0, risk_difference = rd, se_rd = se_rd,
    rd_low = rd - z * se_rd, rd_high = rd + z * se_rd, risk_ratio = s$r1 / s$r0,
    rr_low = s$r1 / s$r0 * exp(-z * se_log_rr), rr_high = s$r1 / s$r0 * exp(z * se_log_rr),
    p_value = 2 * pnorm(-abs(rd / se_rd)),
    bootstrap_se_rd = sd(boot), bootstrap_replicates = length(boot))
}
out$r_version <- R.version.string
out$sandwich_version <- as.character(packageVersion("sandwich"))
writeLines(jsonlite::toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE),
           "gcomp_influence.json")
