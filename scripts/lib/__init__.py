"""What the scripts and the tests share: the SGLang double (``sglang_double``) and the
benchmarks' helpers (``benchkit``)."""
