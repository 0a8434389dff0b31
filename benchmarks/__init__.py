"""Benchmark harness: the curvature engine against PyHessian, curvlinops and hessian-eigenthings (see README.md)."""
