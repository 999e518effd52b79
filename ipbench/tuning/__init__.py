"""`bench tune`: the same hyperparameter search, with the same budget, for every solver of a comparison.

One Optuna study per (solver, operator) pair, all in one SQLite file of the tune folder, searched by a
seeded TPE sampler over the fields each solver declares tunable (`params.Tune`, narrowed or widened by
`--space`), with weak trials pruned after rungs of images. Every trial is an ordinary ipbench run folder.
The result is a suite of the best parameters per operator with their provenance (`tuned.toml`), a summary
and a trial log that `bench report` reads without optuna.

Modules: `space.py` (the search space and `--space`), `rungs.py` (which images each rung adds),
`objective.py` (a trial's value from its rows), `study.py` (optuna: storage, sampler, pruner, the budget,
interrupted trials), `settings.py` (tune.json, the identity a resumed tune is checked against),
`engine.py` (the loop), `trial_log.py` (trials.jsonl), `suite_out.py` and `toml_out.py` (tuned.toml),
`summary.py` (summary.md).
"""
