# Facility-clustered standard errors of the KP effects, reference values for
# tests/unit/analysis/test_cluster_variance.py. Run ONCE from the repository root:
#   python tests/results/clustered_cohort.py   # writes tests/results/clustered_cohort.csv
#   Rscript tests/results/clustered_se.R        # writes tests/results/clustered_se.json
# R 4.x with sandwich (vcovCL), survival (coxph with cluster) and jsonlite.
# CR1 = vcovCL(type = "HC1", cadjust = TRUE): G/(G-1) * (n-1)/(n-k) (Zeileis, Koll &
# Graham 2020). Cox: coxph(..., cluster = facility_id) robust variance (Lin & Wei 1989).
suppressPackageStartupMessages({library(sandwich); library(survival); library(jsonlite)})
d <- read.csv("tests/results/clustered_cohort.csv", stringsAsFactors = TRUE)
d$sex <- factor(d$sex); d$etiology <- factor(d$etiology)
cl <- ~facility_id
ctl <- glm.control(epsilon = 1e-14, maxit = 200)  # converge far below the test tolerances
se_kp <- function(fit, type = "HC1", cadjust = TRUE)
  unname(sqrt(diag(vcovCL(fit, cluster = cl, type = type, cadjust = cadjust)))["kp"])
model_se <- function(fit) unname(sqrt(diag(vcov(fit)))["kp"])
out <- list(n = nrow(d), clusters = length(unique(d$facility_id)))

# Cement leakage: unadjusted RD (linear probability model) and log RR (Poisson), CR1.
f_rd <- glm(cement_leakage ~ kp, family = gaussian, data = d, control = ctl)
f_rr <- glm(cement_leakage ~ kp, family = poisson, data = d, control = ctl)
out$leak_rd <- unname(coef(f_rd)["kp"]); out$leak_rd_se <- se_kp(f_rd)
out$leak_log_rr <- unname(coef(f_rr)["kp"]); out$leak_log_rr_se <- se_kp(f_rr)
# Logistic log-odds ratio, model-based and clustered (the issue's 1.33x check).
f_lo <- glm(cement_leakage ~ kp + age + sex + etiology, family = binomial, data = d,
            control = ctl)
out$leak_logit_kp_se_model <- model_se(f_lo); out$leak_logit_kp_se_cr1 <- se_kp(f_lo)

# G-computation RD and log RR: stacked estimating equations (logistic scores, the two
# mean risks) with the influence functions summed by facility, CR1 factor with k = the
# logistic coefficients. Written out by hand here (Stefanski & Boos 2002).
X <- model.matrix(f_lo); y <- d$cement_leakage; b <- coef(f_lo); n <- nrow(X); k <- ncol(X)
p <- as.vector(plogis(X %*% b))
X1 <- X; X1[, "kp"] <- 1; X0 <- X; X0[, "kp"] <- 0
p1 <- as.vector(plogis(X1 %*% b)); p0 <- as.vector(plogis(X0 %*% b))
mu1 <- mean(p1); mu0 <- mean(p0)
A <- crossprod(X, X * (p * (1 - p)))
h1 <- colMeans(X1 * (p1 * (1 - p1))); h0 <- colMeans(X0 * (p0 * (1 - p0)))
U <- X * (y - p)
phi1 <- (p1 - mu1) / n + as.vector(U %*% solve(A, h1))
phi0 <- (p0 - mu0) / n + as.vector(U %*% solve(A, h0))
G <- length(unique(d$facility_id))
fac <- G / (G - 1) * (n - 1) / (n - k)
s_rd <- rowsum(phi1 - phi0, d$facility_id); s_lr <- rowsum(phi1 / mu1 - phi0 / mu0, d$facility_id)
out$gcomp_rd <- mu1 - mu0; out$gcomp_rd_se <- sqrt(fac * sum(s_rd^2))
out$gcomp_log_rr <- log(mu1 / mu0); out$gcomp_log_rr_se <- sqrt(fac * sum(s_lr^2))
# Independent check of the formula: cluster bootstrap of the whole g-computation.
set.seed(20261207)
ids <- unique(d$facility_id); rows <- split(seq_len(n), d$facility_id)
boot <- replicate(1000, {
  take <- unlist(rows[as.character(sample(ids, G, replace = TRUE))], use.names = FALSE)
  db <- d[take, ]
  fb <- suppressWarnings(glm(cement_leakage ~ kp + age + sex + etiology, family = binomial,
                             data = db))
  mean(predict(fb, transform(db, kp = 1), type = "response")) -
    mean(predict(fb, transform(db, kp = 0), type = "response"))
})
out$gcomp_rd_cluster_bootstrap_se <- sd(boot)

# IPTW (ATE, stabilised) risk difference: weighted glm(y ~ kp) + vcovCL (svyglm-like;
# the saturated binomial-identity and Gaussian models give the same estimate and sandwich).
ps <- fitted(glm(kp ~ age + sex + etiology, family = binomial, data = d, control = ctl))
w <- ifelse(d$kp == 1, mean(d$kp) / ps, (1 - mean(d$kp)) / (1 - ps))
f_ip <- glm(cement_leakage ~ kp, family = gaussian, weights = w, data = d,
            control = ctl)
out$iptw_rd <- unname(coef(f_ip)["kp"]); out$iptw_rd_se <- se_kp(f_ip)

# Procedure duration: unadjusted and adjusted OLS; pain at month 1: ANCOVA.
f_du <- lm(duration_min ~ kp, data = d)
f_da <- lm(duration_min ~ kp + age + sex + etiology, data = d)
out$duration_md <- unname(coef(f_du)["kp"]); out$duration_md_se <- se_kp(f_du)
out$duration_adj <- unname(coef(f_da)["kp"]); out$duration_adj_se <- se_kp(f_da)
f_pu <- lm(pain_month1 ~ kp, data = d)
f_pa <- lm(pain_month1 ~ kp + pain_baseline + age + sex + etiology, data = d)
out$pain_md_se <- se_kp(f_pu)
out$pain_ancova <- unname(coef(f_pa)["kp"]); out$pain_ancova_se <- se_kp(f_pa)

# Time to a new fracture (deaths censored at the last contact): Cox, Efron ties.
d$time <- ifelse(d$adjacent_fracture == 1, d$adjacent_fracture_days, d$followup_days)
c_u <- coxph(Surv(time, adjacent_fracture) ~ kp, data = d, ties = "efron",
             cluster = facility_id)
c_a <- coxph(Surv(time, adjacent_fracture) ~ kp + age + sex + etiology, data = d,
             ties = "efron", cluster = facility_id)
out$cox_log_hr <- unname(coef(c_u)["kp"]); out$cox_se_robust <- unname(sqrt(diag(c_u$var))[1])
out$cox_se_model <- unname(sqrt(diag(c_u$naive.var))[1])
out$cox_adj_log_hr <- unname(coef(c_a)["kp"])
out$cox_adj_se_robust <- unname(sqrt(diag(c_a$var))[1])

# Costs: gamma GLM with log link (adjusted), and the difference in means with CR0
# (no G/(G-1), cadjust = FALSE: what a cluster bootstrap of the difference estimates).
dc <- subset(d, !is.na(cost) & cost > 0)
f_g <- glm(cost ~ kp + age + sex + etiology, family = Gamma(link = "log"), data = dc,
           control = ctl)
out$gamma_log_ratio <- unname(coef(f_g)["kp"]); out$gamma_se <- se_kp(f_g)
f_c <- lm(cost ~ kp, data = subset(d, !is.na(cost)))
out$cost_md <- unname(coef(f_c)["kp"])
out$cost_md_se_cr0 <- se_kp(f_c, type = "HC0", cadjust = FALSE)

write_json(out, "tests/results/clustered_se.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
