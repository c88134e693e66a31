"""Reports: running workloads under each scheme, the measures, tables,
plots and the headline study."""
