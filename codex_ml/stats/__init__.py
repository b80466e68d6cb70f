"""Statistics over documents that eval and compare share: the percentile bootstrap of ratio metrics
(bootstrap.py) and the paired difference of two runs scored on the same documents (paired.py). numpy and
scipy only: nothing of the project is imported, so every layer above may use them."""
