# Reference values for analysis.meta.pool_studies(method="REML") and hartung_knapp=True
# (issue 12, item 7.3): metafor::rma(method="REML") and rma(..., test="knha").
#
# Data: the BCG vaccine trials (metafor's dat.bcg, Colditz et al. 1994) as the project ships
# them in tests/fixtures/stats-reference-cases.json (case "meta_bcg"), read from there: all 13
# trials and the first 4 (few studies, where the Hartung-Knapp interval matters most).
# Effect sizes as pool_studies computes them: escalc log RR ("RR"), log OR ("OR") and RD
# ("RD"); no trial has a zero cell. REML is iterated to a change below 1e-12 (metafor's
# default threshold 1e-5 would limit the comparison to about 5 digits).
#
# Run once from this folder:  Rscript meta_reml_knha.R   (R 4.x, metafor 3.8-1)
# writes meta_reml_knha.json. CI does not run R.
library(metafor)

cases <- jsonlite::fromJSON("../fixtures/stats-reference-cases.json", simplifyVector = FALSE)$cases
bcg <- Filter(function(case) case$name == "meta_bcg", cases)[[1]]$inputs
dat.bcg <- data.frame(tpos = unlist(bcg$tpos), tneg = unlist(bcg$tneg),
                      cpos = unlist(bcg$cpos), cneg = unlist(bcg$cneg))
subsets <- list(all13 = seq_len(nrow(dat.bcg)), first4 = 1:4)
fits <- list(REML = list(method = "REML", test = "z"),
             REML_knha = list(method = "REML", test = "knha"),
             DL_knha = list(method = "DL", test = "knha"))
out <- list()
for (subset in names(subsets)) {
  d <- dat.bcg[subsets[[subset]], ]
  for (measure in c("RR", "OR", "RD")) {
    es <- escalc(measure = measure, ai = tpos, bi = tneg, ci = cpos, di = cneg, data = d)
    for (fit_name in names(fits)) {
      spec <- fits[[fit_name]]
      fit <- rma(yi, vi, data = es, method = spec$method, test = spec$test,
                 control = list(threshold = 1e-12, maxiter = 1000))
      out[[paste(subset, measure, fit_name, sep = "_")]] <- list(
        subset = subset, measure = measure, method = spec$method, test = spec$test,
        k = fit$k, estimate = unname(fit$b[1, 1]), se = fit$se, ci_lb = fit$ci.lb,
        ci_ub = fit$ci.ub, statistic = fit$zval, p_value = fit$pval, tau2 = fit$tau2,
        df = if (spec$test == "knha") fit$dfs else NULL)
    }
  }
}
out$metafor_version <- as.character(packageVersion("metafor"))
out$r_version <- R.version.string
writeLines(jsonlite::toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE),
           "meta_reml_knha.json")
