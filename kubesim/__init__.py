"""kubesim: a simulated Kubernetes API + Knative Serving + Ambassador for development and tests.

It imports nothing from Django. See kubesim/README.md.
"""
