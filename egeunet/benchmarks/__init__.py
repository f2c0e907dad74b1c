"""Benchmarks: size, latency and Dice parity per exported format, and training throughput."""
