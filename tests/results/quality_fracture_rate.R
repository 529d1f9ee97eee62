# Reference values for analysis.quality's Poisson case-mix model of new fracture
# (issue 12 item 2), computed once with R and committed beside this script:
#   Rscript tests/results/quality_fracture_rate.R
# Input: quality_fracture_rate.csv (3,000 demo records, seed 11, rows with prior_fractures
# recorded; person_time = days at risk + 0.5, as analysis.quality.person_time).
# Model: piecewise-constant baseline rate over follow-up bands 0-90-180-365-730-Inf days,
# rate ratios for age, sex and prior fractures: survSplit into one row per record and band,
# then glm(poisson) with log(days in band) as offset (Holford 1980; Laird & Olivier 1981).
# Output: quality_fracture_rate.json with the coefficients, their SEs, and each record's
# expected events (sum over its bands) of the adjusted and of the band-only (crude) model.
library(survival)
library(jsonlite)
here <- dirname(sub("--file=", "", grep("--file=", commandArgs(FALSE), value = TRUE)))
d <- read.csv(file.path(here, "quality_fracture_rate.csv"), stringsAsFactors = FALSE)
d$sex <- factor(d$sex, levels = c("F", setdiff(sort(unique(d$sex)), "F")))
d$start <- 0
split <- survSplit(Surv(start, person_time, fracture) ~ ., data = d,
                   cut = c(90, 180, 365, 730), episode = "band")
split$days <- split$person_time - split$start
fit <- glm(fracture ~ factor(band) + age + sex + prior_fractures + offset(log(days)),
           family = poisson, data = split, control = glm.control(epsilon = 1e-12, maxit = 100))
crude <- glm(fracture ~ factor(band) + offset(log(days)), family = poisson, data = split,
             control = glm.control(epsilon = 1e-12, maxit = 100))
per_record <- function(model) as.numeric(tapply(fitted(model), split$record_id, sum)[d$record_id])
co <- summary(fit)$coefficients
keep <- c("age", grep("^sex", rownames(co), value = TRUE), "prior_fractures")
out <- list(
  terms = keep,
  log_rate_ratio = unname(co[keep, "Estimate"]),
  se = unname(co[keep, "Std. Error"]),
  expected = per_record(fit),
  expected_crude = per_record(crude),
  record_id = d$record_id,
  r_version = R.version.string
)
write(toJSON(out, digits = 15), file.path(here, "quality_fracture_rate.json"))
