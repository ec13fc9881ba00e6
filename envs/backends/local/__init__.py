"""The ``local`` backend: a real serving testbed on one machine.

Real ONNX Runtime inference servers speaking KServe v2 as Triton does, HAProxy in front of
them, a real Prometheus scraping them, and real Locust generating the load.
"""
