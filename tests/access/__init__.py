"""Tests of the access package: partner schools and the access decision."""
