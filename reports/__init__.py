"""hdbench's self-contained HTML report, built from asv's results (``python -m hdbench.reports``).

``reports.results`` reads and merges asv results directories into one pandas table;
``reports.build`` writes the pages. See ``reports.__main__`` for the command line.
"""
