"""Genomics on Hail. Hail is imported lazily, so ``import genomics`` needs no Java."""
