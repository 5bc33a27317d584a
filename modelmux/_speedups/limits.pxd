# The C layout of ``modelmux._speedups.limits`` (built from ``_speedups/limits.pyx``), for
# ``gate.pyx`` to cimport; setup.py puts the project root on Cython's include path to find it.

cdef class TokenBucket:
    cdef public double capacity, rate, tokens, _last

    cdef void _fill(self, double now) noexcept


cdef class Concurrency:
    cdef public long long limit, in_flight


cdef class DeploymentLimits:
    cdef public TokenBucket rpm, tpm
    cdef public Concurrency concurrency

    cdef double grant(self, double now, double cost) except? -1.0
    cdef void fix(self, double estimate, double actual) noexcept
