"""compare: `codex compare A B`, two runs (or two sides of pooled seeds) judged on the documents both
scored: the paired difference of each metric with its interval and p-value, and what moved most.

runs.py resolves and reads the runs (git revisions, `dvc exp` names, folders), metrics.py says what is
compared, pairing.py pairs rows and measures (on codex_ml.stats), render.py prints, command.py is the
command. It reads eval's files, never eval's code: a layer beside eval and report."""
