"""Numbers from records: no training, no drawing.

- ``metrics`` - accuracy, average incremental accuracy, forgetting, BWT, many / medium / few;
- ``tables`` - tidy pandas tables from run records (what every figure draws);
- ``seeds`` - mean and spread over seeds, rank correlation; ``verdicts`` - a claim checked with its numbers;
- ``findings`` - what a figure shows, in words, with its numbers.

May import ``config``, ``errors``, ``files``, ``checks``. Never a run, a plot or an experiment.
"""
