"""hdbench's HTML report, built from asv's results directories (``python -m reports``)."""
