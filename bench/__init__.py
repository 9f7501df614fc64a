"""`make bench`: Chairside's speed and scale benchmark (see docs/performance.md)."""
