"""Analysis of results: statistics (:mod:`~jaxpg.analysis.stats`), reference
scores (:mod:`~jaxpg.analysis.scores`), comparisons of runs
(:mod:`~jaxpg.analysis.compare`) and plots (:mod:`~jaxpg.analysis.plotting`)."""
