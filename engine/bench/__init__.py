"""Latency benchmarks per backend and device profile (read / pre / infer / post, p50 / p95, FPS)."""
